//! The block-device layer every disk path shares (issue #14): today
//! `usage`, the one reader of mounts and swap areas that wipe selection,
//! the inventory and the disk benchmark's write guard all use. The scan
//! (one `Disk` type) and the write guard are to move here too.

pub mod guard;
pub mod scan;
pub mod usage;
