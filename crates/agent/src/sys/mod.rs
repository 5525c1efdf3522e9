//! The few system calls and ioctls std does not wrap, each wrapped once
//! with a safe signature. The only place in the crate where `unsafe` is allowed.

pub mod blk;
pub mod cpu;
pub mod dm;
pub mod ethtool;
pub mod ifaddrs;
pub mod iobuf;
pub mod ipmi;
pub mod kexec;
pub mod lldp;
pub mod lock;
pub mod mem;
pub mod nvme;
pub mod rusage;
pub mod sg;
pub mod signal;
pub mod tcp;
pub mod uring;
