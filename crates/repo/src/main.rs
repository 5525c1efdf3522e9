//! The `speediso-repo` binary (runs on the repository server): logging,
//! arguments, then `speediso_repo::cli`.

use clap::Parser;

fn main() {
    let cli = speediso_repo::cli::Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let code = match speediso_repo::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("speediso-repo: error: {e:#}");
            speediso_proto::exit::FAILED
        }
    };
    std::process::exit(code);
}
