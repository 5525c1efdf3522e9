//! The report endpoint sink. `event` appends the event's JSON line to the
//! run's spool (see `report::spool`) and wakes the sender thread; the sender
//! fsyncs the spool, POSTs NDJSON batches to `URL/v1/events` (replaying
//! leftover spools of earlier runs first), records the acknowledged offset,
//! and backs off per `report::retry` while the collector is unreachable.
//! Nothing here can fail the task: trouble is logged and the spool kept.

use crate::events::{Event, Sink};
use crate::report::retry::{Backoff, RetryPolicy};
use crate::report::spool::{self, SpoolFile};
use crate::report::Config;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the sender waits for more events before sending a batch.
const LINGER: Duration = Duration::from_millis(100);
/// Upper bounds of one batch (the collector accepts far more).
const MAX_BATCH_BYTES: usize = 1 << 20;
const MAX_BATCH_LINES: usize = 5000;

/// Tuning for tests; production uses `Tuning::default()`.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub running: RetryPolicy,
    pub linger: Duration,
    pub max_batch_lines: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            running: RetryPolicy::RUNNING,
            linger: LINGER,
            max_batch_lines: MAX_BATCH_LINES,
        }
    }
}

#[derive(Default)]
struct Shared {
    /// The current run's spool, once the first event created it.
    current: Option<PathBuf>,
    /// Bytes of complete lines written to the current spool.
    written: u64,
    /// Spools (leftovers and current) the sender has not finished.
    pending: Vec<PathBuf>,
    /// Set by `close`: drain until this instant, then give up.
    closing: Option<Instant>,
    /// Everything delivered after `close` began.
    drained: bool,
    /// Last delivery problem, for the close message.
    last_error: Option<String>,
    /// Keep sending past the drain deadline (erasure certificates are
    /// undelivered and the machine must not power off without them).
    hold: bool,
    /// Events that could not be appended to the spool (its file system is
    /// full, or an I/O error): lost, counted, and said loudly.
    dropped: u64,
    /// Certificates the collector refused (a 4xx for their line): never
    /// delivered, so a hold must not end as if they were.
    refused_certificates: u64,
    /// The sender thread ended (a panic): nothing will be sent any more.
    sender_gone: bool,
}

struct State {
    m: Mutex<Shared>,
    cv: Condvar,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait while `busy` holds, until `until` at the latest.
    fn wait_while<'a>(
        &self,
        s: std::sync::MutexGuard<'a, Shared>,
        until: Instant,
        busy: impl FnMut(&mut Shared) -> bool,
    ) -> std::sync::MutexGuard<'a, Shared> {
        let left = until.saturating_duration_since(Instant::now());
        match self.cv.wait_timeout_while(s, left, busy) {
            Ok((s, _)) => s,
            Err(e) => e.into_inner().0,
        }
    }
}

pub struct Report {
    cfg: Config,
    dir: PathBuf,
    writer: Option<File>,
    disabled: bool,
    state: Arc<State>,
    sender: Option<JoinHandle<()>>,
    tuning: Tuning,
    /// The spool has run out of room once: from then on progress events
    /// are not even tried, so what room there is goes to what matters.
    full: bool,
}

/// How often a holding run repeats its box on the console.
const HOLD_REMIND: Duration = Duration::from_secs(600);
/// Room kept free in the spool directory for the events that matter when
/// its file system fills up (certificates, results, the run's end).
const RESERVE_BYTES: usize = 4 << 20;

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `close` holds for undelivered certificates (see
/// `set_hold_evidence`). One process runs one task, so a process-wide
/// switch is the honest shape: the runner decides once the run is over.
static HOLD_EVIDENCE: AtomicBool = AtomicBool::new(false);
/// Set when an erasure certificate can never reach the report endpoint
/// (the collector refused it, or it could not be spooled).
static EVIDENCE_LOST: AtomicBool = AtomicBool::new(false);

/// Hold in `close` while certificates are undelivered: for a run that
/// succeeded and whose task powers off or reboots afterwards.
pub fn set_hold_evidence(on: bool) {
    HOLD_EVIDENCE.store(on, Ordering::SeqCst);
}

/// Did a certificate of this process's run become undeliverable? The
/// runner then fails the run, so nothing powers the machine off.
pub fn evidence_lost() -> bool {
    EVIDENCE_LOST.load(Ordering::SeqCst)
}

fn carries_certificates(line: &[u8]) -> bool {
    memchr::memmem::find(line, b"\"certificates\":[{").is_some()
}

impl Report {
    /// A report sink spooling under `<run_dir>/spool`. Leftover spools of
    /// earlier runs found there are replayed first.
    pub fn new(cfg: Config, run_dir: &Path) -> Report {
        Self::with_tuning(cfg, run_dir, Tuning::default())
    }

    pub fn with_tuning(cfg: Config, run_dir: &Path, tuning: Tuning) -> Report {
        let state = Arc::new(State {
            m: Mutex::new(Shared::default()),
            cv: Condvar::new(),
        });
        let dir = spool::spool_dir(run_dir);
        let leftovers = spool::leftovers(&dir, &cfg.base);
        if !leftovers.is_empty() {
            tracing::info!(
                "report: replaying {} leftover spool(s) from {}",
                leftovers.len(),
                dir.display()
            );
        }
        state.lock().pending = leftovers.iter().map(|s| s.path.clone()).collect();
        let sender = match cfg.agent() {
            Ok(agent) => {
                let st = state.clone();
                let c = cfg.clone();
                let t = tuning.clone();
                std::thread::Builder::new()
                    .name("report-sender".into())
                    .spawn(move || {
                        let _gone = Gone(st.clone());
                        Sender::new(c, agent, st, t, leftovers).run()
                    })
                    .map_err(|e| tracing::warn!("report: cannot start sender: {e}"))
                    .ok()
            }
            Err(e) => {
                tracing::warn!("report: {e:#}; events are only spooled");
                None
            }
        };
        Report {
            cfg,
            dir,
            writer: None,
            disabled: false,
            state,
            sender,
            tuning,
            full: false,
        }
    }

    /// Events that could not be spooled (and so will never be delivered).
    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }

    /// Erasure certificates in the spools not yet acknowledged.
    pub fn undelivered_certificates(&self) -> usize {
        let pending = self.state.lock().pending.clone();
        let mut ids: Vec<String> = Vec::new();
        for p in &pending {
            for id in spool::undelivered_certificates(p) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids.len()
    }

    /// Stay until every certificate is delivered (see `hold_evidence`).
    fn hold(&self, waited: Duration) {
        let started = Instant::now();
        let hold_file = spool::hold_path(&self.dir);
        let mut last_box: Option<Instant> = None;
        let mut s = self.state.lock();
        while !s.drained {
            if s.sender_gone {
                say_loudly("speediso: report: the sender stopped; the certificates cannot be delivered from this run\n");
                EVIDENCE_LOST.store(true, Ordering::SeqCst);
                break;
            }
            let n_certs = {
                drop(s);
                let n = self.undelivered_certificates();
                s = self.state.lock();
                n
            };
            if n_certs == 0 && !s.drained {
                // Only plain events are left: the ordinary rules apply.
                break;
            }
            if last_box.is_none_or(|t| t.elapsed() >= HOLD_REMIND) {
                let info = serde_json::json!({
                    "since": crate::events::rfc3339(std::time::SystemTime::now() - started.elapsed()),
                    "certificates": n_certs,
                    "endpoint": crate::redact::text(&self.cfg.base),
                    "last_error": s.last_error.as_deref().map(|e| crate::redact::text(e).into_owned()),
                    "pid": std::process::id(),
                });
                let _ = std::fs::write(&hold_file, format!("{info}\n"));
                let msg = hold_box(
                    n_certs,
                    &Undelivered {
                        url: &self.cfg.base,
                        waited: waited + started.elapsed(),
                        dir: &self.dir,
                        last_error: s.last_error.as_deref(),
                    },
                );
                say_loudly(&msg);
                last_box = Some(Instant::now());
            }
            s = self
                .state
                .cv
                .wait_timeout(s, Duration::from_secs(5))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let drained = s.drained;
        s.hold = false;
        drop(s);
        self.state.cv.notify_all();
        if last_box.is_some() {
            let _ = std::fs::remove_file(&hold_file);
            if drained {
                say_loudly(&format!(
                    "speediso: report: every erasure certificate delivered to {} after {}; going on\n",
                    crate::redact::text(&self.cfg.base),
                    crate::sinks::human_duration((waited + started.elapsed()).as_secs_f64())
                ));
            }
        }
    }

    fn open_spool(&mut self, run_id: &str) -> bool {
        match spool::create(&self.dir, run_id, &self.cfg.base) {
            Ok((f, path)) => {
                // Best effort: a reserve that a full file system gives back.
                let _ = std::fs::write(self.reserve_path(), vec![0u8; RESERVE_BYTES]);
                self.writer = Some(f);
                let mut s = self.state.lock();
                s.current = Some(path.clone());
                s.pending.push(path);
                true
            }
            Err(e) => {
                // Without a spool nothing is durable; say so once and stop.
                say_loudly(&format!(
                    "speediso: report: {e:#}; events will not be reported\n"
                ));
                self.disabled = true;
                false
            }
        }
    }

    fn reserve_path(&self) -> PathBuf {
        self.dir.join(".reserve")
    }

    /// Append one line, whole or not at all. On a full file system the
    /// reserve is given back once and the line tried again.
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let whole = self.state.lock().written;
        let w = self.writer.as_mut().expect("spool opened");
        match w.write_all(line) {
            Ok(()) => return Ok(()),
            Err(e) => {
                // A partial write (ENOSPC mid-line) must not leave a torn
                // line for the next event to be glued onto.
                let _ = w.set_len(whole);
                if std::fs::remove_file(self.reserve_path()).is_err() {
                    return Err(e);
                }
            }
        }
        let w = self.writer.as_mut().expect("spool opened");
        w.write_all(line).inspect_err(|_| {
            let _ = w.set_len(whole);
        })
    }

    /// How many events are not yet acknowledged, from the spools on disk.
    pub fn undelivered(&self) -> u64 {
        let s = self.state.lock();
        s.pending.iter().map(|p| spool::undelivered_lines(p)).sum()
    }

    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }
}

impl Sink for Report {
    fn event(&mut self, ev: &Event) {
        if self.disabled || (self.writer.is_none() && !self.open_spool(&ev.run_id)) {
            if let crate::events::Body::Result { data } = &ev.body {
                if data["certificates"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
                {
                    EVIDENCE_LOST.store(true, Ordering::SeqCst);
                }
            }
            return;
        }
        let Ok(mut line) = serde_json::to_vec(ev) else {
            return;
        };
        line.push(b'\n');
        let progress = matches!(ev.body, crate::events::Body::Progress { .. });
        // One write(2) per event: the line is in the page cache (and
        // survives our own crash) before anything is sent.
        let res = if self.full && progress {
            Err(std::io::Error::other("spool full: progress not kept"))
        } else {
            self.append(&line)
        };
        if let Err(e) = res {
            self.full = true;
            let mut s = self.state.lock();
            s.dropped += 1;
            let n = s.dropped;
            drop(s);
            if carries_certificates(&line) {
                EVIDENCE_LOST.store(true, Ordering::SeqCst);
                say_loudly(&format!(
                    "speediso: report: SPOOL FULL ({e}): an ERASURE CERTIFICATE could not be \
                     spooled and will not reach {}; the run fails so the machine is not powered off\n",
                    crate::redact::text(&self.cfg.base)
                ));
            } else if n == 1 || n.is_power_of_two() {
                say_loudly(&format!(
                    "speediso: report: SPOOL FULL or failing ({e}): {n} event(s) dropped so far, \
                     not kept for the report endpoint\n"
                ));
            }
            return;
        }
        let mut s = self.state.lock();
        s.written += line.len() as u64;
        drop(s);
        self.state.cv.notify_all();
    }

    fn close(&mut self, deadline: Duration) {
        // Nothing more is appended: the reserve has done its job.
        let _ = std::fs::remove_file(self.reserve_path());
        let wait = self.cfg.drain.unwrap_or(deadline);
        let until = Instant::now() + wait;
        let hold = HOLD_EVIDENCE.load(Ordering::SeqCst) && self.sender.is_some() && !self.disabled;
        let mut s = self.state.lock();
        s.closing = Some(until);
        s.hold = hold;
        self.state.cv.notify_all();
        if self.sender.is_some() {
            s = self.state.wait_while(s, until, |s| !s.drained);
        }
        let mut drained = s.drained;
        drop(s);
        if !drained && hold {
            self.hold(wait);
            drained = self.state.lock().drained;
        }
        let (last_error, dropped) = {
            let s = self.state.lock();
            (s.last_error.clone(), s.dropped)
        };
        if dropped > 0 {
            say_loudly(&framed(&[
                format!("SPEEDISO: {dropped} EVENT(S) DROPPED: the report spool in"),
                format!(
                    "{}/ could not take them (file system full?).",
                    self.dir.display()
                ),
                "They never reach the report endpoint; the console and the".into(),
                "journal have them.".into(),
            ]));
        }
        if drained {
            if let Some(h) = self.sender.take() {
                let _ = h.join();
            }
            return;
        }
        let n = self.undelivered();
        let msg = undelivered_box(
            n,
            &Undelivered {
                url: &self.cfg.base,
                waited: wait,
                dir: &self.dir,
                last_error: last_error.as_deref(),
            },
        );
        say_loudly(&msg);
    }
}

/// Marks the sender as gone when its thread unwinds from a panic, so a
/// holding `close` does not wait for a sender that no longer exists.
struct Gone(Arc<State>);

impl Drop for Gone {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().sender_gone = true;
            self.0.cv.notify_all();
        }
    }
}

/// To stderr, and under systemd (where stderr is the journal) to the
/// console too: the person at the console must see it.
fn say_loudly(msg: &str) {
    let msg = crate::redact::text(msg);
    eprint!("{msg}");
    if std::env::var_os("INVOCATION_ID").is_some() {
        if let Ok(mut c) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
            let _ = c.write_all(msg.as_bytes());
        }
    }
}

/// What was not delivered, to where, how long it waited, and where it is
/// kept: what both loud boxes say.
pub struct Undelivered<'a> {
    pub url: &'a str,
    pub waited: Duration,
    pub dir: &'a Path,
    pub last_error: Option<&'a str>,
}

impl Undelivered<'_> {
    /// `head`, the last error (cut to 100 characters), then `tail`, framed.
    fn boxed(&self, head: Vec<String>, tail: [String; 2]) -> String {
        let mut lines = head;
        if let Some(e) = self.last_error {
            let e: String = e.chars().take(100).collect();
            lines.push(format!("last error: {e}"));
        }
        lines.extend(tail);
        framed(&lines)
    }

    fn waited(&self) -> String {
        crate::sinks::human_duration(self.waited.as_secs_f64())
    }
}

/// The box a run prints while it stays up for undelivered certificates.
pub fn hold_box(certs: usize, u: &Undelivered) -> String {
    u.boxed(
        vec![
            format!(
                "SPEEDISO: {certs} ERASURE CERTIFICATE(S) NOT DELIVERED to {}",
                u.url
            ),
            format!(
                "Not taken within {}. This machine STAYS UP and keeps sending;",
                u.waited()
            ),
            "it powers off (or reboots) once they are delivered.".into(),
        ],
        [
            format!("They are kept in {}/ (RAM).", u.dir.display()),
            "speediso.wipe.poweroff_undelivered=1 powers off without them.".into(),
        ],
    )
}

fn framed(lines: &[String]) -> String {
    let w = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let bar = format!("+{}+\n", "=".repeat(w + 4));
    let mut out = String::from("\n");
    out.push_str(&bar);
    for l in lines {
        out.push_str(&format!("|  {l:<w$}  |\n"));
    }
    out.push_str(&bar);
    out
}

/// The loud message printed when the spool could not be drained.
pub fn undelivered_box(n: u64, u: &Undelivered) -> String {
    u.boxed(
        vec![
            format!("SPEEDISO: {n} EVENT(S) NOT DELIVERED to {}", u.url),
            format!(
                "the report endpoint did not take them within {}.",
                u.waited()
            ),
        ],
        [
            format!("They are kept in {}/ and are sent", u.dir.display()),
            "by the next speediso run with the same speediso.report=.".into(),
        ],
    )
}

/// Outcome of one POST.
enum Sent {
    Ok,
    /// Worth retrying later (network, 5xx, 401/403, 429).
    Retry(String),
    /// The collector refused this batch's content (400, 413, 422, or 409:
    /// a `(run_id, seq)` it holds with another content): split it, or drop
    /// a single offending line.
    Rejected(String),
}

struct Sender {
    cfg: Config,
    agent: ureq::Agent,
    state: Arc<State>,
    tuning: Tuning,
    spools: Vec<SpoolFile>,
    backoff: Option<Backoff>,
    /// Lines per batch after a rejection (halved until one line).
    split: Option<usize>,
}

impl Sender {
    fn new(
        cfg: Config,
        agent: ureq::Agent,
        state: Arc<State>,
        tuning: Tuning,
        leftovers: Vec<SpoolFile>,
    ) -> Sender {
        Sender {
            cfg,
            agent,
            state,
            tuning,
            spools: leftovers,
            backoff: None,
            split: None,
        }
    }

    fn run(mut self) {
        let mut have_current = false;
        loop {
            // Pick up the current run's spool once it exists.
            let (current, written, closing) = {
                let s = self.state.lock();
                (s.current.clone(), s.written, s.closing)
            };
            if let (false, Some(p)) = (have_current, &current) {
                match SpoolFile::open(p, None) {
                    Ok(f) => {
                        self.spools.push(f);
                        have_current = true;
                    }
                    Err(e) => tracing::warn!("report: {e:#}"),
                }
            }
            let Some(sp) = self.spools.first_mut() else {
                if closing.is_some() {
                    self.finish();
                    return;
                }
                self.wait(Duration::from_secs(1));
                continue;
            };
            let is_current = current.as_deref() == Some(sp.path.as_path());
            let upto = if is_current {
                written
            } else {
                sp.sync().unwrap_or(0)
            };
            if upto <= sp.acked() {
                if !is_current {
                    // A leftover fully delivered (a torn last line, from a
                    // crash mid-write, is dropped with it).
                    let done = self.spools.remove(0);
                    self.forget(&done.path);
                    done.remove();
                    continue;
                }
                if closing.is_some() {
                    let done = self.spools.remove(0);
                    self.forget(&done.path);
                    done.remove();
                    self.finish();
                    return;
                }
                self.wait_for_events(written);
                continue;
            }
            if is_current && closing.is_none() && self.backoff.is_none() {
                // Let a few more events join the batch.
                self.linger(written);
            }
            let (upto, closing) = {
                let s = self.state.lock();
                (if is_current { s.written } else { upto }, s.closing)
            };
            let sp = &mut self.spools[0];
            if is_current {
                if let Err(e) = sp.sync() {
                    tracing::warn!("report: {e:#}");
                }
            }
            let max_lines = self.split.unwrap_or(self.tuning.max_batch_lines);
            let batch = match sp.read_batch(upto, MAX_BATCH_BYTES, max_lines) {
                Ok(b) if b.lines > 0 => b,
                Ok(_) if !is_current => {
                    // Only a torn last line left (a crash mid-write).
                    let done = self.spools.remove(0);
                    self.forget(&done.path);
                    done.remove();
                    continue;
                }
                Ok(_) => {
                    self.wait(Duration::from_millis(50));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("report: {e:#}");
                    self.wait(Duration::from_secs(1));
                    continue;
                }
            };
            match self.post(&batch.bytes) {
                Sent::Ok => {
                    if let Err(e) = self.spools[0].ack(batch.end) {
                        tracing::warn!("report: recording delivery: {e:#}");
                    }
                    self.backoff = None;
                    if self.split.is_some_and(|n| batch.lines <= n) {
                        // Past the troublesome part: back to full batches.
                        self.split = None;
                    }
                }
                Sent::Rejected(why) if batch.lines > 1 => {
                    tracing::warn!("report: batch of {} rejected: {why}", batch.lines);
                    self.split = Some(batch.lines / 2);
                }
                Sent::Rejected(why) => {
                    // One event the collector will never take: skip it,
                    // else it blocks every later one forever.
                    if carries_certificates(&batch.bytes) {
                        // Kept, and the run fails: a refused certificate is
                        // not a delivered one.
                        let kept = self.spools[0].path.with_extension("refused");
                        let _ = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&kept)
                            .and_then(|mut f| f.write_all(&batch.bytes));
                        self.state.lock().refused_certificates += 1;
                        EVIDENCE_LOST.store(true, Ordering::SeqCst);
                        say_loudly(&format!(
                            "speediso: report: the collector REFUSED an erasure certificate ({}); \
                             kept in {}; the run fails so the machine is not powered off\n",
                            crate::redact::text(&why),
                            kept.display()
                        ));
                    } else {
                        say_loudly(&format!(
                            "speediso: report: collector rejected an event, skipping it: {}\n",
                            crate::redact::text(&why)
                        ));
                    }
                    if let Err(e) = self.spools[0].ack(batch.end) {
                        tracing::warn!("report: recording delivery: {e:#}");
                    }
                    self.split = None;
                }
                Sent::Retry(why) => {
                    tracing::debug!("report: {why}");
                    self.state.lock().last_error = Some(why);
                    let b = self.backoff.get_or_insert_with(|| match closing {
                        Some(until) => {
                            RetryPolicy::draining(until.saturating_duration_since(Instant::now()))
                                .start()
                        }
                        None => self.tuning.running.start(),
                    });
                    match b.next_delay() {
                        Some(d) => self.wait_backoff(d, closing.is_none()),
                        None if self.state.lock().hold => {
                            // Holding for certificates: past the drain
                            // deadline, back off as while running.
                            self.backoff = Some(self.tuning.running.start());
                        }
                        None => {
                            // Drain deadline passed: close() reports it.
                            return;
                        }
                    }
                }
            }
        }
    }

    fn post(&self, body: &[u8]) -> Sent {
        let mut req = self
            .agent
            .post(&self.cfg.events_url())
            .set("Content-Type", "application/x-ndjson");
        if let Some(t) = &self.cfg.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.send_bytes(body) {
            Ok(_) => Sent::Ok,
            Err(ureq::Error::Status(code, resp)) => {
                let text: String = resp
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                let why = format!("{} answered {code}: {}", self.cfg.events_url(), text.trim());
                match code {
                    400 | 409 | 413 | 422 => Sent::Rejected(why),
                    _ => Sent::Retry(why),
                }
            }
            Err(e) => Sent::Retry(format!("{}: {e}", self.cfg.events_url())),
        }
    }

    fn forget(&self, path: &Path) {
        self.state.lock().pending.retain(|p| p != path);
    }

    fn finish(&self) {
        self.state.lock().drained = true;
        self.state.cv.notify_all();
    }

    fn wait(&self, d: Duration) {
        let s = self.state.lock();
        let _ = self.state.cv.wait_timeout(s, d);
    }

    /// Sleep until more than `seen` bytes were written, close begins, or a
    /// second passes.
    fn wait_for_events(&self, seen: u64) {
        let s = self.state.lock();
        let _ = self
            .state
            .cv
            .wait_timeout_while(s, Duration::from_secs(1), |s| {
                s.written == seen && s.closing.is_none()
            });
    }

    /// Wait `linger` for more events unless a full batch is already there.
    fn linger(&self, seen: u64) {
        let until = Instant::now() + self.tuning.linger;
        let s = self.state.lock();
        drop(self.state.wait_while(s, until, |s| {
            s.closing.is_none() && s.written - seen < (MAX_BATCH_BYTES as u64) / 2
        }));
    }

    /// Back off for `d`; while running, `close` cuts the wait short so the
    /// drain starts at once with its own (short) policy.
    fn wait_backoff(&mut self, d: Duration, interruptible: bool) {
        let s = self.state.lock();
        let (s, _) = self
            .state
            .cv
            .wait_timeout_while(s, d, |s| !(interruptible && s.closing.is_some()))
            .unwrap_or_else(|e| e.into_inner());
        if interruptible && s.closing.is_some() {
            self.backoff = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_is_rectangular_and_says_the_count() {
        let u = Undelivered {
            url: "https://c.example",
            waited: Duration::from_secs(30),
            dir: Path::new("/run/speediso/spool"),
            last_error: Some("connection refused"),
        };
        for (b, says) in [
            (undelivered_box(42, &u), "42 EVENT(S) NOT DELIVERED"),
            (hold_box(3, &u), "3 ERASURE CERTIFICATE(S) NOT DELIVERED"),
        ] {
            assert!(b.contains(says), "{b}");
            assert!(b.contains("/run/speediso/spool/"), "{b}");
            assert!(b.contains("last error: connection refused"), "{b}");
            let widths: Vec<usize> = b.lines().skip(1).map(|l| l.chars().count()).collect();
            assert!(widths.iter().all(|&w| w == widths[0]), "{b}");
        }
    }
}
