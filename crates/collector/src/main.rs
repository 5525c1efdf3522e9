//! The `speediso-collector` binary: logging, arguments, then the library.

use clap::Parser;

fn main() {
    let cli = speediso_collector::Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let code = match speediso_collector::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("speediso-collector: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
