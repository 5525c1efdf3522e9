//! Exit statuses of every speediso binary (agent, collector, repository
//! tool): what scripts and systemd units test for.

pub const SUCCESS: i32 = 0;
/// A step failed.
pub const FAILED: i32 = 1;
/// Bad arguments, or the task/plan was rejected.
pub const USAGE: i32 = 2;
/// A destructive task was not confirmed.
pub const REFUSED: i32 = 3;
/// The task ran past its time limit.
pub const TIMED_OUT: i32 = 4;
