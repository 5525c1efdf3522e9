//! The one HTTP(S) client setup of the agent: the report endpoint, Foreman,
//! the signing key, the download test and install images all get their
//! `ureq` agent from `builder`, so they trust the same roots in the same
//! order and say who they are the same way. A leaf: the trust policy
//! itself is `speediso_proto::tls` (the collector's TLS to PostgreSQL
//! uses the same one), re-exported here.
//!
//! Trust:
//! - `Trust::Pinned(pem)` (`speediso.ca=`): exactly those certificates,
//!   nothing else;
//! - `Trust::System`: the public web roots compiled in, plus the image's
//!   CA bundle: `SSL_CERT_FILE` when set (an unreadable one is an error),
//!   else the first of `CA_BUNDLES` that exists. A mirror or collector
//!   behind a company CA then verifies without turning verification off.
//!
//! Verification is never turned off here; plain `http://` is the caller's
//! decision (loopback, or `speediso.insecure=1`).

use anyhow::Result;
pub use speediso_proto::tls::{tls, Trust, CA_BUNDLES};

/// An agent builder with `trust` and speediso's user agent; callers add
/// their timeouts and redirect policy.
pub fn builder(trust: &Trust) -> Result<ureq::AgentBuilder> {
    Ok(ureq::AgentBuilder::new()
        .tls_config(tls(trust)?)
        .user_agent(concat!("speediso/", env!("CARGO_PKG_VERSION"))))
}
