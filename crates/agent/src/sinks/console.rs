//! Readable lines for a person. On a TTY, progress events redraw one live
//! line per step; elsewhere (the serial console, a pipe) progress is printed
//! at most every few seconds so logs stay short.

use super::describe;
use crate::events::{Body, Event, Sink};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

pub struct Console<W: Write + Send> {
    out: W,
    tty: bool,
    /// Step whose progress line is on screen (TTY only).
    live: Option<String>,
    /// Last time progress was printed, per step (non-TTY throttle).
    last_progress: HashMap<String, Instant>,
    every: Duration,
    /// Print progress only: every other line reaches the console through
    /// journald's forwarding of its structured entry.
    progress_only: bool,
}

impl<W: Write + Send> Console<W> {
    pub fn new(out: W, tty: bool) -> Self {
        Console {
            out,
            tty,
            live: None,
            last_progress: HashMap::new(),
            every: Duration::from_secs(5),
            progress_only: false,
        }
    }
}

impl Console<Box<dyn Write + Send>> {
    /// The console of a run: stdout, except under systemd when stdout is
    /// the journal stream (`StandardOutput=journal+console`) and the
    /// journal sink is active. There a line on stdout would reach the
    /// journal a second time, next to the structured entry of the same
    /// event, so the line goes to `/dev/console` itself: once on the
    /// console, once (structured) in the journal. Line mode there, as on
    /// the serial console it is.
    ///
    /// Where journald forwards every entry to the console itself
    /// (`ForwardToConsole=yes`, or `systemd.journald.forward_to_console` on
    /// the kernel command line, as the VM suite boots), the structured
    /// entry already reaches the console, so this sink writes only the
    /// progress lines, which the journal sink does not send.
    pub fn stdout() -> Self {
        if super::journal::stdout_is_journal() {
            if let Some(c) = open_console() {
                let mut sink = Console::new(Box::new(c) as Box<dyn Write + Send>, false);
                sink.progress_only =
                    super::journal::forwards_to_console(&crate::root::Root::system());
                return sink;
            }
        }
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Console::new(Box::new(std::io::stdout()), tty)
    }
}

/// `/dev/console` for writing, never as our controlling terminal (a
/// service is a session leader; without O_NOCTTY the open would make the
/// console its terminal and a hangup there would reach the task).
fn open_console() -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/console")
        .ok()
}

impl<W: Write + Send> Sink for Console<W> {
    fn event(&mut self, ev: &Event) {
        if self.progress_only && !matches!(ev.body, Body::Progress { .. }) {
            return;
        }
        let line = describe(ev);
        let step = ev.step.clone().unwrap_or_default();
        let _ = match &ev.body {
            Body::Progress { .. } if self.tty => {
                self.live = Some(step);
                write!(self.out, "\r\x1b[K{line}")
            }
            Body::Progress { .. } => {
                let now = Instant::now();
                let due = self
                    .last_progress
                    .get(&step)
                    .is_none_or(|t| now.duration_since(*t) >= self.every);
                if !due {
                    return;
                }
                self.last_progress.insert(step, now);
                writeln!(self.out, "{line}")
            }
            _ => {
                if self.live.take().is_some() {
                    let _ = write!(self.out, "\r\x1b[K");
                }
                writeln!(self.out, "{line}")
            }
        };
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Bus, HostId, Progress};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn progress_only_leaves_the_rest_to_the_journal() {
        let buf = Buf::default();
        let mut c = Console::new(buf.clone(), false);
        c.progress_only = true;
        let bus = Bus::new(Some("t".into()), HostId::default(), vec![Box::new(c)]);
        let s = bus.step("wipe");
        s.log("not here");
        s.progress(Progress {
            percent: Some(50.0),
            ..Default::default()
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "[wipe]  50.0%\n", "{text}");
    }

    #[test]
    fn non_tty_throttles_progress() {
        let buf = Buf::default();
        let bus = Bus::new(
            Some("t".into()),
            HostId::default(),
            vec![Box::new(Console::new(buf.clone(), false))],
        );
        let s = bus.step("wipe");
        for i in 0..100 {
            s.progress(Progress {
                percent: Some(i as f64),
                ..Default::default()
            });
        }
        s.log("done");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("[wipe]   0.0%"));
        assert!(text.ends_with("[wipe] done\n"));
    }
}
