//! Signal dispositions.
#![allow(unsafe_code)]

/// Restore the default SIGPIPE action (Rust's runtime ignores it), so
/// `speediso tasks | head` ends quietly like any other Unix tool instead of
/// panicking on a write error.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler
    // and touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
