//! speediso: the agent of a PXE-booted live image. It reads the task from
//! the kernel command line, runs it as a systemd unit and streams events to
//! the console, the journal and a report endpoint.
//!
//! Layout: `cmdline` (pure parser) → `plan` (validation) → `dispatch`
//! (systemd) / `run` (steps from `tasks`), with `events` fanned out to
//! `sinks`. All D-Bus code is in `systemd`; all unsafe code in `sys`. What
//! it shares with the collector (event schema, certificate signatures, TLS
//! trust, renderings) is `speediso_proto`; see docs/architecture.md.

#![deny(unsafe_code)]

pub mod bench;
pub mod blockdev;
pub mod burnin;
pub mod cli;
pub mod cmd;
pub mod cmdline;
pub mod dispatch;
pub mod events;
pub mod health;
pub mod host;
pub mod http;
pub mod install;
pub mod inventory;
pub mod module;
pub mod netbench;
pub mod options;
pub mod plan;
pub mod redact;
pub mod registry;
pub mod report;
pub mod root;
pub mod run;
pub mod sinks;
pub mod sshkeys;
pub mod sys;
pub mod systemd;
pub mod tasks;
pub mod wipe;
