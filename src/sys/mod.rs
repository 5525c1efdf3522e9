//! The few system calls std does not wrap, each with a safe signature.
//! This is the only place in the crate where `unsafe` is allowed.

pub mod flock;
