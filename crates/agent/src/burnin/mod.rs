//! Burn-in: the parts of the `burnin` task that load the hardware and
//! check it while they do: `selftest` (the disks' own self-tests), `cpu`
//! (checked arithmetic on every CPU), `scan` (a read-only read of every
//! block of every disk), `memory` (pattern write and check over most of
//! memory on every CPU), `gpu` (DCGM diagnostics or gpu_burn). (The
//! task's health snapshots before and after are `health`'s.)

pub mod cpu;
pub mod gpu;
pub mod memory;
pub mod scan;
pub mod selftest;
