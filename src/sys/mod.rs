//! The few system calls std does not wrap, each once, with a safe signature.
//! The only place in the crate where `unsafe` is allowed.

pub mod ifaddrs;
