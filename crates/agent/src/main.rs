//! The `speediso` agent binary: logging, arguments, then the library.

use clap::Parser;

fn main() {
    speediso::sys::signal::default_sigpipe();
    let cli = speediso::cli::Cli::parse();
    // Under systemd the journal adds timestamps; elsewhere they are noise too
    // for a short-lived command, so never print them.
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        // Log lines pass through the mask, like events (speediso::redact).
        .with_writer(|| speediso::redact::Stderr)
        .without_time()
        .with_target(false)
        .init();
    let code = match speediso::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("speediso: error: {}", speediso::redact::text(&msg));
            speediso::run::exit::FAILED
        }
    };
    std::process::exit(code);
}
