//! The `speediso-collector` binary: logging, arguments, then the library.

use clap::Parser;

fn main() {
    let cli = speediso_collector::Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(speediso_proto::cli::log_level(cli.verbose))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    speediso_proto::cli::exit("speediso-collector", speediso_collector::run(cli));
}
