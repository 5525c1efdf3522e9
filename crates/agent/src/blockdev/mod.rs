//! The block-device layer every disk path shares (issue #14): `scan`, the
//! one `Disk` type and reader of /sys/block (wipe selection, install
//! target, inventory record); `usage`, the one "in use" reader (mounts,
//! swap, holders, live medium, loop backing files); `guard`, the write
//! refusal of the disk benchmark and the check the wipe and install make on
//! an opened device; `controller`, the storage controller a disk sits on
//! and whether it is a RAID logical volume. It points down only (`root`, `sys`, std, serde,
//! anyhow); which disk may be written is the callers' policy.

pub mod controller;
pub mod guard;
pub mod scan;
pub mod udev;
pub mod usage;
