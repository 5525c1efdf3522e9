//! An iperf3 client (TCP) that runs against an unmodified `iperf3 -s`.
//!
//! The control channel follows iperf3's protocol: a 37-byte cookie, one
//! signed state byte per server message, JSON parameters and results with a
//! 4-byte big-endian length prefix, and data streams that open with the same
//! cookie. Learnt from iperf3's iperf_api.c / iperf_client_api.c and written
//! afresh here: blocking sockets and one thread per data stream, no runtime.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// iperf3's default port.
pub const DEFAULT_PORT: u16 = 5201;
/// 36 characters and a NUL, as iperf3 sends it.
const COOKIE_SIZE: usize = 37;
/// iperf3's default TCP block size (`-l`): one write or read per block.
pub const BLOCK_SIZE: usize = 128 * 1024;
/// iperf3 refuses more parallel streams than this.
pub const MAX_STREAMS: u32 = 128;
/// Biggest JSON message accepted from a server; iperf3's are a few KiB.
const MAX_JSON: usize = 16 << 20;

/// The control-channel states iperf3 sends as one signed byte (iperf_api.h).
mod st {
    pub const TEST_START: i8 = 1;
    pub const TEST_RUNNING: i8 = 2;
    pub const TEST_END: i8 = 4;
    pub const PARAM_EXCHANGE: i8 = 9;
    pub const CREATE_STREAMS: i8 = 10;
    pub const SERVER_TERMINATE: i8 = 11;
    pub const CLIENT_TERMINATE: i8 = 12;
    pub const EXCHANGE_RESULTS: i8 = 13;
    pub const DISPLAY_RESULTS: i8 = 14;
    pub const IPERF_START: i8 = 15;
    pub const IPERF_DONE: i8 = 16;
    pub const ACCESS_DENIED: i8 = -1;
    pub const SERVER_ERROR: i8 = -2;
}

fn state_name(s: i8) -> String {
    match s {
        st::TEST_START => "TEST_START".into(),
        st::TEST_RUNNING => "TEST_RUNNING".into(),
        st::TEST_END => "TEST_END".into(),
        st::PARAM_EXCHANGE => "PARAM_EXCHANGE".into(),
        st::CREATE_STREAMS => "CREATE_STREAMS".into(),
        st::SERVER_TERMINATE => "SERVER_TERMINATE".into(),
        st::CLIENT_TERMINATE => "CLIENT_TERMINATE".into(),
        st::EXCHANGE_RESULTS => "EXCHANGE_RESULTS".into(),
        st::DISPLAY_RESULTS => "DISPLAY_RESULTS".into(),
        st::IPERF_START => "IPERF_START".into(),
        st::IPERF_DONE => "IPERF_DONE".into(),
        st::ACCESS_DENIED => "ACCESS_DENIED".into(),
        st::SERVER_ERROR => "SERVER_ERROR".into(),
        n => format!("unknown state {n}"),
    }
}

/// A few of iperf3's error numbers (`i_errno`) a server sends with
/// SERVER_ERROR, the ones a client can do something about.
fn server_error_text(code: i32) -> &'static str {
    match code {
        5 => "test duration too long for this server",
        6 => "too many parallel streams for this server",
        7 => "block size too large for this server",
        27 => "total bandwidth exceeds the server's limit",
        100 => "server could not create a new test",
        104 => "server could not accept the connection",
        106 => "server could not read the cookie",
        114 => "server could not read the parameters",
        117 => "server could not read the results",
        119 => "server saw the client terminate",
        121 => "server is busy running another test",
        142 => "server requires authentication (--rsa-private-key-path), not supported",
        _ => "server-side error (see iperf3's iperf_api.h)",
    }
}

/// Which way the data flows, seen from this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Client sends (upload), like `iperf3 -c`.
    Forward,
    /// Server sends (download), like `iperf3 -c -R`.
    Reverse,
    /// Both at once, like `iperf3 -c --bidir`.
    Bidir,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Parallel streams per direction.
    pub streams: u32,
    /// Whole seconds (iperf3's `time` parameter is an integer).
    pub duration: Duration,
    pub mode: Mode,
    /// Bound on DNS resolution and on each TCP connect.
    pub connect_timeout: Duration,
    /// Bound on every wait for the server: a control message, or progress on
    /// a data stream.
    pub io_timeout: Duration,
}

impl Config {
    pub fn new(host: String, port: u16) -> Config {
        Config {
            host,
            port,
            streams: 1,
            duration: Duration::from_secs(10),
            mode: Mode::Forward,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(15),
        }
    }

    /// `host:port` as people write it (IPv6 in brackets).
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Split `HOST[:PORT]`, `[V6]` or `[V6]:PORT`; the port defaults to 5201.
pub fn parse_server(s: &str) -> Result<(String, u16)> {
    let bad = || anyhow!("server {s:?} is not HOST[:PORT] with a port in 1-65535");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
        match tail {
            "" => (h, None),
            t => (h, Some(t.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address: no port.
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(bad)?,
    };
    Ok((host.to_string(), port))
}

/// Throughput over one reporting interval, for live progress.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    pub start_s: f64,
    pub end_s: f64,
    /// Bytes this client wrote (upload) in the interval.
    pub sent_bytes: u64,
    /// Bytes this client read (download) in the interval.
    pub received_bytes: u64,
    pub mbps: f64,
    /// Bytes moved since the test started, both directions.
    pub cumulative_bytes: u64,
}

/// Figures of one data stream. `sent_*` are the sender's own counts and
/// `received_*` the receiver's, whichever side each was.
#[derive(Debug, Clone, Serialize)]
pub struct StreamFigures {
    /// iperf3's stream id, as in the server's log.
    pub id: u32,
    /// `upload` (client → server) or `download`.
    pub direction: &'static str,
    pub sent_bytes: u64,
    pub sent_seconds: f64,
    pub sent_mbps: f64,
    pub received_bytes: u64,
    pub received_seconds: f64,
    pub received_mbps: f64,
    /// Sender-side TCP retransmits, when the sender's kernel reports them.
    pub retransmits: Option<u64>,
}

/// Totals for one direction.
#[derive(Debug, Clone, Serialize)]
pub struct DirectionFigures {
    pub direction: &'static str,
    /// Who counted the sent bytes: `client` or `server`.
    pub sender: &'static str,
    pub sent_bytes: u64,
    pub sent_mbps: f64,
    pub received_bytes: u64,
    pub received_mbps: f64,
    pub retransmits: Option<u64>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub server: String,
    /// The address actually used.
    pub address: String,
    pub mode: Mode,
    pub reverse: bool,
    pub bidir: bool,
    /// Parallel streams per direction.
    pub streams: u32,
    /// Requested duration.
    pub duration_s: f64,
    /// Time from TEST_RUNNING to TEST_END on this client.
    pub measured_s: f64,
    /// Sums over all directions: bytes the senders wrote, and what the
    /// receivers counted (the server, for uploads).
    pub sent_bytes: u64,
    pub sent_mbps: f64,
    pub received_bytes: u64,
    pub received_mbps: f64,
    pub retransmits: Option<u64>,
    pub directions: Vec<DirectionFigures>,
    pub per_stream: Vec<StreamFigures>,
    pub intervals: Vec<Interval>,
    /// This process's CPU use during the test, percent of one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cpu_percent: Option<f64>,
    /// The server's CPU use as it reported it, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub congestion: Option<String>,
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    }
}

/// iperf3's stream ids: 1, then 3, 4, 5, ... (a quirk iperf3 keeps for
/// compatibility; both ends number streams in the order they connect).
fn stream_id(index: usize) -> u32 {
    if index == 0 {
        1
    } else {
        index as u32 + 2
    }
}

fn make_cookie() -> [u8; COOKIE_SIZE] {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut c = [0u8; COOKIE_SIZE];
    if getrandom::getrandom(&mut c).is_err() {
        // Uniqueness between concurrent clients is all that matters.
        let t = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
        for (i, b) in c.iter_mut().enumerate() {
            *b = (t >> (i % 8 * 8)) as u8 ^ i as u8;
        }
    }
    for b in c.iter_mut().take(COOKIE_SIZE - 1) {
        *b = CHARS[*b as usize % CHARS.len()];
    }
    c[COOKIE_SIZE - 1] = 0;
    c
}

/// Resolve with a bound: getaddrinfo itself may wait far longer.
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let h = host.to_string();
    std::thread::spawn(move || {
        let r = (h.as_str(), port)
            .to_socket_addrs()
            .map(|a| a.collect::<Vec<_>>());
        let _ = tx.send(r);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(v)) if !v.is_empty() => Ok(v),
        Ok(Ok(_)) => bail!("DNS failure: iperf3 server host '{host}' has no addresses"),
        Ok(Err(e)) => bail!("DNS failure: cannot resolve iperf3 server host '{host}': {e}"),
        Err(_) => bail!(
            "DNS failure: resolving iperf3 server host '{host}' took longer than {}s",
            timeout.as_secs()
        ),
    }
}

fn connect_error(addr: SocketAddr, e: &io::Error, timeout: Duration) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => anyhow!(
            "connection refused by {addr}: no iperf3 server is listening on port {}",
            addr.port()
        ),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => anyhow!(
            "connecting to {addr} timed out after {}s (host down, or the port filtered?)",
            timeout.as_secs()
        ),
        _ => anyhow!("connecting to {addr}: {e}"),
    }
}

/// Try each address in turn; the error names the last one tried.
fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => return Ok((s, *a)),
            Err(e) => last = Some(connect_error(*a, &e, timeout)),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no address to connect to")))
}

/// The control connection and the server's name for messages.
struct Control {
    sock: TcpStream,
    server: String,
    timeout: Duration,
}

impl Control {
    fn gone(&self, during: &str) -> anyhow::Error {
        anyhow!(
            "iperf3 server {} went away {during} (it closed the control connection)",
            self.server
        )
    }

    fn io_error(&self, e: io::Error, during: &str) -> anyhow::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => anyhow!(
                "timeout: iperf3 server {} did not answer within {}s {during}",
                self.server,
                self.timeout.as_secs()
            ),
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => self.gone(during),
            _ => anyhow!("control connection to {} {during}: {e}", self.server),
        }
    }

    /// Read one state byte, waiting at most `wait`. `Ok(None)`: nothing yet.
    fn poll_state(&mut self, wait: Duration, during: &str) -> Result<Option<i8>> {
        let wait = wait.max(Duration::from_millis(1));
        self.sock.set_read_timeout(Some(wait))?;
        let mut b = [0u8; 1];
        loop {
            return match self.sock.read(&mut b) {
                Ok(0) => Err(self.gone(during)),
                Ok(_) => Ok(Some(b[0] as i8)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(self.io_error(e, during)),
            };
        }
    }

    /// Turn the server's refusals into errors that say what happened.
    fn refusal(&mut self, state: i8, during: &str) -> anyhow::Error {
        match state {
            st::ACCESS_DENIED => anyhow!(
                "iperf3 server {} is busy running another client's test (ACCESS_DENIED); \
                 try again later or use another server",
                self.server
            ),
            st::SERVER_TERMINATE => anyhow!(
                "iperf3 server {} terminated the test {during} (SERVER_TERMINATE)",
                self.server
            ),
            st::SERVER_ERROR => {
                let mut b = [0u8; 8];
                self.sock
                    .set_read_timeout(Some(self.timeout))
                    .and_then(|_| self.sock.read_exact(&mut b))
                    .map(|_| {
                        let code = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        let errno = i32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                        let os = if errno != 0 {
                            format!(": {}", io::Error::from_raw_os_error(errno))
                        } else {
                            String::new()
                        };
                        anyhow!(
                            "iperf3 server {} reported an error {during}: {} (iperf3 error {code}{os})",
                            self.server,
                            server_error_text(code)
                        )
                    })
                    .unwrap_or_else(|_| {
                        anyhow!(
                            "iperf3 server {} reported an error {during} (SERVER_ERROR)",
                            self.server
                        )
                    })
            }
            s => anyhow!(
                "iperf3 server {} sent {} {during}; protocol out of step",
                self.server,
                state_name(s)
            ),
        }
    }

    /// Wait for `want`; anything else is an error that says what came.
    fn expect(&mut self, want: i8) -> Result<()> {
        let during = format!("while waiting for {}", state_name(want));
        match self.poll_state(self.timeout, &during)? {
            Some(s) if s == want => Ok(()),
            Some(s) => Err(self.refusal(s, &during)),
            None => Err(self.io_error(io::ErrorKind::TimedOut.into(), &during)),
        }
    }

    fn send_state(&mut self, s: i8, during: &str) -> Result<()> {
        self.sock.set_write_timeout(Some(self.timeout))?;
        self.sock
            .write_all(&[s as u8])
            .map_err(|e| self.io_error(e, during))
    }

    fn send_json(&mut self, v: &Value, during: &str) -> Result<()> {
        let text = serde_json::to_vec(v)?;
        let mut msg = Vec::with_capacity(4 + text.len());
        msg.extend_from_slice(&(text.len() as u32).to_be_bytes());
        msg.extend_from_slice(&text);
        self.sock.set_write_timeout(Some(self.timeout))?;
        self.sock
            .write_all(&msg)
            .map_err(|e| self.io_error(e, during))
    }

    fn read_json(&mut self, during: &str) -> Result<Value> {
        self.sock.set_read_timeout(Some(self.timeout))?;
        let mut len = [0u8; 4];
        self.sock
            .read_exact(&mut len)
            .map_err(|e| self.io_error(e, during))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_JSON {
            bail!(
                "iperf3 server {} announced a {len}-byte message {during}; not an iperf3 server?",
                self.server
            );
        }
        let mut buf = vec![0u8; len];
        self.sock
            .read_exact(&mut buf)
            .map_err(|e| self.io_error(e, during))?;
        serde_json::from_slice(&buf).with_context(|| {
            format!(
                "parsing the JSON iperf3 server {} sent {during}",
                self.server
            )
        })
    }
}

/// The parameters iperf3's client sends (send_parameters), TCP only.
fn parameters(cfg: &Config) -> Value {
    let mut p = json!({
        "tcp": true,
        "omit": 0,
        "time": cfg.duration.as_secs(),
        "num": 0,
        "blockcount": 0,
        "parallel": cfg.streams,
        "len": BLOCK_SIZE,
        "pacing_timer": 1000,
        "client_version": concat!("speediso-", env!("CARGO_PKG_VERSION")),
    });
    match cfg.mode {
        Mode::Forward => {}
        Mode::Reverse => p["reverse"] = Value::Bool(true),
        Mode::Bidir => p["bidirectional"] = Value::Bool(true),
    }
    p
}

/// What a stream's thread hands back.
#[derive(Debug, Default)]
struct StreamEnd {
    /// When the sender's last write returned (senders only).
    end: Option<Instant>,
    retransmits: Option<u32>,
}

/// One data connection and its thread.
struct Stream {
    sender: bool,
    /// A second handle, so the main thread can shut the socket down.
    sock: TcpStream,
    bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<StreamEnd>>,
}

/// The data streams; dropping it shuts every socket down and joins every
/// thread, so no error path leaves a thread blocked in the kernel.
struct Streams {
    list: Vec<Stream>,
    /// Set when the test time is over: senders stop writing.
    stop: Arc<AtomicBool>,
    /// Set when this client is tearing down: errors are expected then.
    closing: Arc<AtomicBool>,
    /// The first data-stream failure, for the main thread to report.
    error: Arc<Mutex<Option<String>>>,
}

impl Streams {
    fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn join(&mut self, i: usize) -> StreamEnd {
        self.list[i]
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.closing.store(true, Ordering::SeqCst);
        for s in &self.list {
            let _ = s.sock.shutdown(Shutdown::Both);
        }
        for i in 0..self.list.len() {
            self.join(i);
        }
    }
}

fn record_error(slot: &Mutex<Option<String>>, msg: String) {
    let mut g = slot.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = Some(msg);
    }
}

/// What one data stream's thread shares with the test: its byte counter,
/// the stop and closing flags, the first failure.
struct Shared {
    id: u32,
    bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
}

fn send_loop(mut sock: TcpStream, sh: Shared) -> StreamEnd {
    // Random payload, as iperf3 sends by default, so compressing links do
    // not flatter the figure.
    let mut buf = vec![0u8; BLOCK_SIZE];
    let _ = getrandom::getrandom(&mut buf);
    while !sh.stop.load(Ordering::Relaxed) {
        match sock.write(&buf) {
            Ok(0) => {
                record_error(
                    &sh.error,
                    format!("stream {}: the server stopped reading", sh.id),
                );
                break;
            }
            Ok(n) => {
                sh.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !sh.closing.load(Ordering::SeqCst) {
                    record_error(&sh.error, stream_error(sh.id, "sending", &e));
                }
                break;
            }
        }
    }
    let end = Instant::now();
    let retransmits = crate::sys::tcp::tcp_info(sock.as_fd())
        .ok()
        .map(|i| i.total_retrans);
    StreamEnd {
        end: Some(end),
        retransmits,
    }
}

fn recv_loop(mut sock: TcpStream, sh: Shared) -> StreamEnd {
    let mut buf = vec![0u8; BLOCK_SIZE];
    loop {
        match sock.read(&mut buf) {
            // The server closes its streams when it gets TEST_END; before
            // that, end of stream means it went away.
            Ok(0) => {
                if !sh.stop.load(Ordering::SeqCst) {
                    record_error(
                        &sh.error,
                        format!(
                            "stream {}: the server went away mid-test (it closed the data connection)",
                            sh.id
                        ),
                    );
                }
                break;
            }
            // Keep reading after the test time is over too: the server may
            // be blocked writing and must see TEST_END (iperf3 drains too).
            Ok(n) => {
                sh.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let late = sh.stop.load(Ordering::SeqCst);
                let reset = matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                );
                // A reset after the test time is the server tearing down.
                let expected = sh.closing.load(Ordering::SeqCst) || (late && reset);
                if !expected {
                    record_error(&sh.error, stream_error(sh.id, "receiving", &e));
                }
                break;
            }
        }
    }
    StreamEnd::default()
}

fn stream_error(id: u32, what: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("stream {id}: timeout {what} data (no progress for the I/O timeout)")
        }
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => {
            format!("stream {id}: {what} failed, the server went away mid-test ({e})")
        }
        _ => format!("stream {id}: {what} failed: {e}"),
    }
}

/// CPU time of this process (user + system) in seconds, from /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux architecture we run on.
    Some(ticks / 100.0)
}

/// Run one test. `on_interval` is called about once a second while data
/// flows. Errors say what failed in words a person can act on.
pub fn run(cfg: &Config, on_interval: &mut dyn FnMut(&Interval)) -> Result<Figures> {
    if cfg.streams == 0 || cfg.streams > MAX_STREAMS {
        bail!("streams must be 1 to {MAX_STREAMS}, not {}", cfg.streams);
    }
    if cfg.duration.as_secs() == 0 {
        bail!("duration must be at least 1 second");
    }
    let server = cfg.server();
    let addrs = resolve(&cfg.host, cfg.port, cfg.connect_timeout)?;
    let (sock, addr) = connect_any(&addrs, cfg.connect_timeout)?;
    tracing::debug!("iperf3 control connection to {addr}");
    // Control messages are single bytes; do not let Nagle hold them back.
    sock.set_nodelay(true)?;
    let mut ctrl = Control {
        sock,
        server: server.clone(),
        timeout: cfg.io_timeout,
    };
    let cookie = make_cookie();
    ctrl.sock.set_write_timeout(Some(cfg.io_timeout))?;
    ctrl.sock
        .write_all(&cookie)
        .map_err(|e| ctrl.io_error(e, "while sending the cookie"))?;

    ctrl.expect(st::PARAM_EXCHANGE)?;
    ctrl.send_json(&parameters(cfg), "while sending the test parameters")?;
    ctrl.expect(st::CREATE_STREAMS)?;

    // Senders first, then receivers: the order iperf3 uses, which fixes
    // each stream's id on both ends.
    let n = cfg.streams as usize;
    let roles: Vec<bool> = match cfg.mode {
        Mode::Forward => vec![true; n],
        Mode::Reverse => vec![false; n],
        Mode::Bidir => [vec![true; n], vec![false; n]].concat(),
    };
    let mut streams = Streams {
        list: Vec::new(),
        stop: Arc::new(AtomicBool::new(false)),
        closing: Arc::new(AtomicBool::new(false)),
        error: Arc::new(Mutex::new(None)),
    };
    let mut socks = Vec::new();
    for (i, &sender) in roles.iter().enumerate() {
        let mut s = TcpStream::connect_timeout(&addr, cfg.connect_timeout)
            .map_err(|e| connect_error(addr, &e, cfg.connect_timeout))
            .with_context(|| format!("opening data stream {}", i + 1))?;
        s.set_write_timeout(Some(cfg.io_timeout))?;
        s.set_read_timeout(Some(cfg.io_timeout))?;
        s.write_all(&cookie)
            .with_context(|| format!("sending the cookie on data stream {}", i + 1))?;
        streams.list.push(Stream {
            sender,
            sock: s.try_clone()?,
            bytes: Arc::new(AtomicU64::new(0)),
            thread: None,
        });
        socks.push(s);
    }
    ctrl.expect(st::TEST_START)?;
    ctrl.expect(st::TEST_RUNNING)?;

    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for (i, s) in socks.into_iter().enumerate() {
        let e = &mut streams.list[i];
        let sh = Shared {
            id: stream_id(i),
            bytes: e.bytes.clone(),
            stop: streams.stop.clone(),
            closing: streams.closing.clone(),
            error: streams.error.clone(),
        };
        let sender = e.sender;
        let t = std::thread::Builder::new()
            .name(format!("iperf-{}", sh.id))
            .spawn(move || {
                if sender {
                    send_loop(s, sh)
                } else {
                    recv_loop(s, sh)
                }
            })?;
        streams.list[i].thread = Some(t);
    }

    // The test runs for `duration` on this side, as in iperf3: the client
    // decides when it ends and tells the server with TEST_END.
    let totals = |streams: &Streams| {
        streams.list.iter().fold((0u64, 0u64), |(up, down), s| {
            let b = s.bytes.load(Ordering::Relaxed);
            if s.sender {
                (up + b, down)
            } else {
                (up, down + b)
            }
        })
    };
    let end_at = start + cfg.duration;
    let mut intervals = Vec::new();
    let mut last = (start, (0u64, 0u64));
    let mut emit = |now: Instant, t: (u64, u64), intervals: &mut Vec<Interval>| {
        let secs = now.duration_since(last.0).as_secs_f64();
        if secs < 0.05 {
            return;
        }
        let (up, down) = (t.0 - last.1 .0, t.1 - last.1 .1);
        let iv = Interval {
            start_s: last.0.duration_since(start).as_secs_f64(),
            end_s: now.duration_since(start).as_secs_f64(),
            sent_bytes: up,
            received_bytes: down,
            mbps: mbps(up + down, secs),
            cumulative_bytes: t.0 + t.1,
        };
        on_interval(&iv);
        intervals.push(iv);
        last = (now, t);
    };
    let mut tick = start + Duration::from_secs(1);
    loop {
        if let Some(e) = streams.error() {
            bail!("{e}");
        }
        let now = Instant::now();
        if now >= end_at {
            break;
        }
        let wait = tick.min(end_at) - now;
        if let Some(s) = ctrl.poll_state(wait, "mid-test")? {
            return Err(ctrl.refusal(s, "mid-test"));
        }
        let now = Instant::now();
        if now >= tick {
            emit(now, totals(&streams), &mut intervals);
            tick += Duration::from_secs(1);
        }
    }
    streams.stop.store(true, Ordering::SeqCst);
    let end = Instant::now();
    // Senders finish the write they are in (bounded by the I/O timeout).
    let mut ends: Vec<StreamEnd> = Vec::new();
    for i in 0..streams.list.len() {
        ends.push(if streams.list[i].sender {
            streams.join(i)
        } else {
            StreamEnd::default()
        });
    }
    if let Some(e) = streams.error() {
        bail!("{e}");
    }
    ctrl.send_state(st::TEST_END, "while ending the test")?;
    ctrl.expect(st::EXCHANGE_RESULTS)?;
    // The server has closed its streams now; receivers see the end of
    // their data and stop.
    for (i, e) in ends.iter_mut().enumerate() {
        if !streams.list[i].sender {
            *e = streams.join(i);
        }
    }
    emit(Instant::now().min(end), totals(&streams), &mut intervals);
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some((b - a) / end.duration_since(start).as_secs_f64() * 100.0),
        _ => None,
    };

    let measured = end.duration_since(start).as_secs_f64();
    let mut ours = Vec::new();
    let mut local = Vec::new();
    for (i, s) in streams.list.iter().enumerate() {
        let bytes = s.bytes.load(Ordering::SeqCst);
        let secs = ends[i]
            .end
            .map(|e| e.duration_since(start).as_secs_f64())
            .unwrap_or(measured);
        let retr = if s.sender {
            ends[i].retransmits.map(i64::from).unwrap_or(-1)
        } else {
            -1
        };
        ours.push(json!({
            "id": stream_id(i), "bytes": bytes, "retransmits": retr,
            "jitter": 0, "errors": 0, "omitted_errors": 0,
            "packets": 0, "omitted_packets": 0,
            "start_time": 0, "end_time": secs,
        }));
        local.push((bytes, secs));
    }
    let has_retr = roles.iter().any(|&s| s) && ends.iter().any(|e| e.retransmits.is_some());
    let results = json!({
        "cpu_util_total": cpu.unwrap_or(0.0),
        "cpu_util_user": 0,
        "cpu_util_system": 0,
        "sender_has_retransmits": if cfg.mode == Mode::Reverse { -1 } else { i32::from(has_retr) },
        "streams": ours,
    });
    ctrl.send_json(&results, "while sending our results")?;
    let theirs = ctrl.read_json("while reading the server's results")?;
    ctrl.expect(st::DISPLAY_RESULTS)?;
    // The server waits for this before it closes the test.
    ctrl.send_state(st::IPERF_DONE, "while closing the test")?;
    drop(streams);

    let per_stream = merge(&roles, &local, &ends, &theirs, &server)?;
    Ok(summarize(
        cfg, &server, addr, measured, per_stream, intervals, cpu, &theirs,
    ))
}

/// Pair our per-stream counts with the server's, by iperf3 stream id.
fn merge(
    roles: &[bool],
    local: &[(u64, f64)],
    ends: &[StreamEnd],
    theirs: &Value,
    server: &str,
) -> Result<Vec<StreamFigures>> {
    let list = theirs["streams"]
        .as_array()
        .ok_or_else(|| anyhow!("iperf3 server {server} sent results without streams"))?;
    let mut out = Vec::new();
    for (i, &sender) in roles.iter().enumerate() {
        let id = stream_id(i);
        let s = list
            .iter()
            .find(|s| s["id"].as_u64() == Some(u64::from(id)))
            .ok_or_else(|| anyhow!("iperf3 server {server} sent no results for stream {id}"))?;
        let their_bytes = s["bytes"].as_u64().unwrap_or(0);
        let their_secs =
            s["end_time"].as_f64().unwrap_or(0.0) - s["start_time"].as_f64().unwrap_or(0.0);
        let their_retr = s["retransmits"]
            .as_i64()
            .filter(|&r| r >= 0)
            .map(|r| r as u64);
        let (bytes, secs) = local[i];
        let f = if sender {
            StreamFigures {
                id,
                direction: "upload",
                sent_bytes: bytes,
                sent_seconds: secs,
                sent_mbps: mbps(bytes, secs),
                received_bytes: their_bytes,
                received_seconds: their_secs,
                received_mbps: mbps(their_bytes, their_secs),
                retransmits: ends[i].retransmits.map(u64::from),
            }
        } else {
            StreamFigures {
                id,
                direction: "download",
                sent_bytes: their_bytes,
                sent_seconds: their_secs,
                sent_mbps: mbps(their_bytes, their_secs),
                received_bytes: bytes,
                received_seconds: secs,
                received_mbps: mbps(bytes, secs),
                retransmits: their_retr,
            }
        };
        out.push(f);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    cfg: &Config,
    server: &str,
    addr: SocketAddr,
    measured: f64,
    per_stream: Vec<StreamFigures>,
    intervals: Vec<Interval>,
    cpu: Option<f64>,
    theirs: &Value,
) -> Figures {
    let mut directions = Vec::new();
    for dir in ["upload", "download"] {
        let s: Vec<&StreamFigures> = per_stream.iter().filter(|s| s.direction == dir).collect();
        if s.is_empty() {
            continue;
        }
        let sent: u64 = s.iter().map(|s| s.sent_bytes).sum();
        let recv: u64 = s.iter().map(|s| s.received_bytes).sum();
        // Like iperf3's sums: total bytes over the longest stream time.
        let sent_s = s.iter().map(|s| s.sent_seconds).fold(0.0, f64::max);
        let recv_s = s.iter().map(|s| s.received_seconds).fold(0.0, f64::max);
        let retr = s
            .iter()
            .map(|s| s.retransmits)
            .try_fold(0u64, |a, r| r.map(|r| a + r));
        directions.push(DirectionFigures {
            direction: dir,
            sender: if dir == "upload" { "client" } else { "server" },
            sent_bytes: sent,
            sent_mbps: mbps(sent, sent_s),
            received_bytes: recv,
            received_mbps: mbps(recv, recv_s),
            retransmits: retr,
        });
    }
    let retransmits = directions
        .iter()
        .map(|d| d.retransmits)
        .try_fold(0u64, |a, r| r.map(|r| a + r));
    Figures {
        server: server.to_string(),
        address: addr.to_string(),
        mode: cfg.mode,
        reverse: cfg.mode == Mode::Reverse,
        bidir: cfg.mode == Mode::Bidir,
        streams: cfg.streams,
        duration_s: cfg.duration.as_secs_f64(),
        measured_s: measured,
        sent_bytes: directions.iter().map(|d| d.sent_bytes).sum(),
        sent_mbps: directions.iter().map(|d| d.sent_mbps).sum(),
        received_bytes: directions.iter().map(|d| d.received_bytes).sum(),
        received_mbps: directions.iter().map(|d| d.received_mbps).sum(),
        retransmits,
        directions,
        per_stream,
        intervals,
        client_cpu_percent: cpu,
        server_cpu_percent: theirs["cpu_util_total"].as_f64(),
        congestion: theirs["congestion_used"].as_str().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_strings() {
        let ok = [
            ("iperf.example.net", ("iperf.example.net", 5201)),
            ("10.0.0.1:5202", ("10.0.0.1", 5202)),
            ("[2001:db8::1]:9000", ("2001:db8::1", 9000)),
            ("[2001:db8::1]", ("2001:db8::1", 5201)),
            ("2001:db8::1", ("2001:db8::1", 5201)),
        ];
        for (s, (h, p)) in ok {
            assert_eq!(parse_server(s).unwrap(), (h.to_string(), p), "{s}");
        }
        for s in [
            "",
            ":5201",
            "host:0",
            "host:70000",
            "host:x",
            "[::1",
            "[::1]x",
            "a b",
        ] {
            assert!(parse_server(s).is_err(), "{s:?} accepted");
        }
        let mut c = Config::new("::1".into(), 5201);
        assert_eq!(c.server(), "[::1]:5201");
        c.host = "h".into();
        assert_eq!(c.server(), "h:5201");
    }

    #[test]
    fn cookie_shape() {
        let c = make_cookie();
        assert_eq!(c.len(), 37);
        assert_eq!(c[36], 0);
        assert!(c[..36]
            .iter()
            .all(|b| b"abcdefghijklmnopqrstuvwxyz234567".contains(b)));
        assert_ne!(make_cookie(), c);
    }

    #[test]
    fn ids_follow_iperf3() {
        let ids: Vec<u32> = (0..4).map(stream_id).collect();
        assert_eq!(ids, vec![1, 3, 4, 5]);
    }

    #[test]
    fn parameters_by_mode() {
        let mut c = Config::new("h".into(), 1);
        c.streams = 4;
        c.duration = Duration::from_secs(7);
        let p = parameters(&c);
        assert_eq!(p["tcp"], true);
        assert_eq!(p["parallel"], 4);
        assert_eq!(p["time"], 7);
        assert_eq!(p["len"], 131072);
        assert!(p.get("reverse").is_none() && p.get("bidirectional").is_none());
        c.mode = Mode::Reverse;
        assert_eq!(parameters(&c)["reverse"], true);
        c.mode = Mode::Bidir;
        assert_eq!(parameters(&c)["bidirectional"], true);
    }

    #[test]
    fn merge_pairs_by_id_and_sums() {
        let roles = [true, false];
        let local = [(1_000_000u64, 2.0), (3_000_000u64, 2.0)];
        let ends = [
            StreamEnd {
                end: None,
                retransmits: Some(3),
            },
            StreamEnd::default(),
        ];
        let theirs = json!({"cpu_util_total": 5.5, "streams": [
            {"id": 3, "bytes": 3_100_000u64, "retransmits": 7, "start_time": 0, "end_time": 2.0},
            {"id": 1, "bytes": 990_000u64, "retransmits": -1, "start_time": 0, "end_time": 2.0},
        ]});
        let ps = merge(&roles, &local, &ends, &theirs, "s").unwrap();
        assert_eq!(ps[0].direction, "upload");
        assert_eq!(ps[0].received_bytes, 990_000);
        assert_eq!(ps[0].retransmits, Some(3));
        assert_eq!(ps[1].direction, "download");
        assert_eq!(ps[1].sent_bytes, 3_100_000);
        assert_eq!(ps[1].retransmits, Some(7));
        assert!((ps[0].sent_mbps - 4.0).abs() < 1e-9);
        let mut c = Config::new("s".into(), 1);
        c.mode = Mode::Bidir;
        let f = summarize(
            &c,
            "s",
            "127.0.0.1:1".parse().unwrap(),
            2.0,
            ps,
            vec![],
            None,
            &theirs,
        );
        assert_eq!(f.sent_bytes, 4_100_000);
        assert_eq!(f.retransmits, Some(10));
        assert_eq!(f.directions.len(), 2);
        assert_eq!(f.server_cpu_percent, Some(5.5));
        // A stream the server does not know is an error, not a zero.
        let bad = json!({"streams": [{"id": 9, "bytes": 1}]});
        assert!(merge(&roles, &local, &ends, &bad, "s").is_err());
    }

    #[test]
    fn server_error_codes_have_words() {
        assert!(server_error_text(121).contains("busy"));
        assert!(server_error_text(9999).contains("server-side"));
        assert_eq!(state_name(st::ACCESS_DENIED), "ACCESS_DENIED");
        assert_eq!(state_name(99), "unknown state 99");
    }
}
