//! Event sinks: where the one event stream goes. Each sink renders events
//! its own way; none of them may fail the task.
//!
//! - `console`: readable lines for people (a live progress line on a TTY);
//! - `jsonl`: one JSON object per line, for machines (`--json`);
//! - `journal`: structured journal entries with a MESSAGE_ID per type;
//! - `notify`: sd_notify STATUS= for `systemctl status`;
//! - `state`: the state file `speediso status` reads.
//!
//! - `report`: the report endpoint, through an on-disk spool;
//! - `foreman`: the inventory as Foreman discovery facts.

pub mod console;
pub mod foreman;
pub mod journal;
pub mod jsonl;
pub mod notify;
pub mod report;
pub mod state;

/// One line per event, byte counts and durations: shared with the
/// collector's pages through `speediso_proto`.
pub use speediso_proto::render::{describe, human_bytes, human_duration};
