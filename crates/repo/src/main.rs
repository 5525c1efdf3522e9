//! The `speediso-repo` binary (runs on the repository server): logging,
//! arguments, then `speediso_repo::cli`.

use clap::Parser;

fn main() {
    let cli = speediso_repo::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(speediso_proto::cli::log_level(cli.verbose))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    speediso_proto::cli::exit("speediso-repo", speediso_repo::cli::run(cli));
}
