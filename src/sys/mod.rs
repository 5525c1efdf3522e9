//! The few unsafe system calls the crate needs, each wrapped once behind a
//! safe signature. Nothing outside `sys` uses `unsafe`.

pub mod blk;
pub mod nvme;
pub mod sg;
