//! Burn-in: the parts of the `burnin` task that load the hardware and
//! check it while they do. `selftest`: the disks' own self-tests.
//! (The task's health snapshots before and after are `health`'s.)

pub mod selftest;
