//! Waiting for udev: at boot, udev's coldplug is still assembling md
//! arrays and activating LVM volume groups when a task starts (seen in
//! the VM suite: the array appeared two seconds after the wipe had
//! planned without it). What `udevadm settle` does: udevd keeps
//! `/run/udev/queue` while events are queued or running.

use crate::root::Root;
use std::time::{Duration, Instant};

/// Wait until udev's event queue is empty, at most `limit`. `Ok(waited)`
/// once it is (or when udev runs no queue here), `Err(limit)` when events
/// were still queued at the end.
pub fn settle(root: &Root, limit: Duration) -> Result<Duration, Duration> {
    let queue = root.at("/run/udev/queue");
    let t0 = Instant::now();
    while queue.exists() {
        if t0.elapsed() >= limit {
            return Err(limit);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(t0.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_queue_to_empty_and_gives_up_at_the_limit() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path());
        assert!(settle(&r, Duration::from_secs(1)).is_ok());
        std::fs::create_dir_all(r.at("/run/udev")).unwrap();
        std::fs::write(r.at("/run/udev/queue"), "").unwrap();
        assert_eq!(
            settle(&r, Duration::from_millis(300)),
            Err(Duration::from_millis(300))
        );
        let q = r.at("/run/udev/queue");
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::remove_file(q).unwrap();
        });
        let waited = settle(&r, Duration::from_secs(5)).unwrap();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        h.join().unwrap();
    }
}
