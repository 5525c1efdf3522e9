//! What the command lines of the collector and the repository tool share:
//! `-v` counted into a log level, and the one way a command ends (the
//! error chain printed once, mapped to an exit status).

/// The log level of `-v` given `verbose` times: warnings, then info, then
/// debug.
pub fn log_level(verbose: u8) -> tracing::Level {
    match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    }
}

/// Exit with the status `result` carries, or print the error chain as
/// `{program}: error: …` and exit with `exit::FAILED`.
pub fn exit(program: &str, result: anyhow::Result<i32>) -> ! {
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: error: {e:#}");
            crate::exit::FAILED
        }
    };
    std::process::exit(code)
}
