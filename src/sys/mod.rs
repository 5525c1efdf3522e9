//! The few places that need `unsafe`: each wrapped once behind a safe API.
//! - `uring`: io_uring queues with owned, aligned buffers (disk benchmark).

pub mod uring;
