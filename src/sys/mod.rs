//! The few places that need `unsafe`: each wrapped once behind a safe API.
//! - `uring`: io_uring queues with owned, aligned buffers (disk benchmark);
//! - `cpu`: a 64-bit `div` exactly as sysbench's compiled loop issues it.

pub mod cpu;
pub mod uring;
