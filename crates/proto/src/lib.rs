//! What the speediso agent and the collector share, and nothing else: the
//! event schema and host identity, the erasure certificate's canonical form
//! with its signature, the human renderings of events and units, the TLS
//! trust policy, the exit statuses and how a command ends. No I/O beyond
//! reading CA bundles and key files; no async runtime, no database.

pub mod cert;
pub mod cli;
pub mod events;
pub mod exit;
pub mod render;
pub mod tls;
pub mod units;
