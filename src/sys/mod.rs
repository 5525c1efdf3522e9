//! The few places that need `unsafe`: raw syscalls and ioctls, each wrapped
//! once with a safe signature. Nothing outside this module uses `unsafe`.

pub mod tcp;
