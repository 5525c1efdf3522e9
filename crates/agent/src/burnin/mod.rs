//! Burn-in: stress the hardware for a while and check every answer, so a
//! machine that computes or reads wrongly fails before it takes work.
//! `cpu` (checked arithmetic on every CPU) and `scan` (a read-only read of
//! every block of every disk); each is a module of its own.

pub mod cpu;
pub mod scan;
