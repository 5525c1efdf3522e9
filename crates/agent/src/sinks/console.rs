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
}

impl<W: Write + Send> Console<W> {
    pub fn new(out: W, tty: bool) -> Self {
        Console {
            out,
            tty,
            live: None,
            last_progress: HashMap::new(),
            every: Duration::from_secs(5),
        }
    }
}

impl Console<std::io::Stdout> {
    pub fn stdout() -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Console::new(std::io::stdout(), tty)
    }
}

impl<W: Write + Send> Sink for Console<W> {
    fn event(&mut self, ev: &Event) {
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
