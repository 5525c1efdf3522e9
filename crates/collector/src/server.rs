//! The collector's HTTP service: `POST /v1/events` (auth, limits, one
//! writer thread committing groups of batches before acknowledging them),
//! the JSON read API, `/healthz`, the web pages, and graceful shutdown on
//! SIGTERM/SIGINT (in-flight batches are committed and answered first).
//! Who may call what is `auth.rs` (every route passes its guard); HTTPS
//! and the plain-HTTP rule are `tls.rs`. The agent tokens the collector
//! issues (`/v1/admin/tokens`) and their binding by a first batch are
//! here, on `tokendb.rs`.

use super::auth::{self, Auth};
use super::ingest::{self, Limits, Refusal};
use super::store::{self, BatchOutcome, Store};
use super::tokendb::{self, Bound, TokenDb};
use super::tokens::Token;
use super::{cert, tls, web};
use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

pub struct ServeArgs {
    pub listen: String,
    /// SQLite path or postgres:// URL.
    pub db: String,
    pub tokens: PathBuf,
    /// `--users`: viewer/admin accounts for the web login.
    pub users: Option<PathBuf>,
    /// `--tls-cert`, `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--insecure-plain-http`: plain HTTP on a non-loopback address.
    pub insecure_plain_http: bool,
    pub limits: Limits,
    /// `--trusted-signers`.
    pub trusted_signers: Option<PathBuf>,
    /// `--max-in-flight`: requests served at once; more get 503.
    pub max_in_flight: usize,
}

/// One batch waiting for the writer.
struct Job {
    /// Shared with the request, which frees the events after the answer:
    /// not the writer, whose time every waiting batch shares.
    events: Arc<Vec<ingest::Incoming>>,
    reply: oneshot::Sender<Result<BatchOutcome, String>>,
}

pub struct App {
    /// Tokens, users and sessions; the files reloaded on SIGHUP.
    pub auth: Arc<Auth>,
    /// Reloaded on SIGHUP; `None`: plain HTTP.
    pub tls: Option<Arc<tls::Tls>>,
    limits: Limits,
    /// Keys whose certificates are trusted; `None`: no list configured.
    pub(crate) trusted: Option<Arc<cert::TrustedSigners>>,
    writer: mpsc::Sender<Job>,
    readers: Vec<Mutex<Box<dyn Store>>>,
    next_reader: AtomicUsize,
    /// The agent tokens in the database (issue, revoke, bind).
    tokens_db: Mutex<TokenDb>,
}

/// How often the copy of the database's tokens is refreshed (and last
/// uses written): what `token issue`/`token revoke` run elsewhere (the
/// CLI, another collector on the same PostgreSQL) take at most to count.
pub const TOKEN_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

impl App {
    /// What SIGHUP does: tokens, users and the TLS pair again, each kept as
    /// it was when its file does not load. Returns the messages.
    pub fn reload(&self) -> Vec<String> {
        let mut said = self.auth.reload();
        match self.refresh_tokens(true) {
            Ok(m) => said.push(m),
            Err(e) => said.push(format!("keeping the old database tokens: {e:#}")),
        }
        if let Some(t) = &self.tls {
            said.push(t.reload());
        }
        said
    }

    /// With `register_file` (start, reload) rows for the tokens file's
    /// first-use lines; the last uses noted since the last time; then a
    /// fresh copy of the database's tokens for `Auth`. Blocking: call it
    /// off the async threads.
    pub fn refresh_tokens(&self, register_file: bool) -> Result<String> {
        let mut db = self.tokens_db.lock().unwrap_or_else(|e| e.into_inner());
        if register_file {
            db.register_file(&self.auth.first_use_file_tokens())?;
        }
        let used = self.auth.take_used();
        if let Err(e) = db.touch(&used) {
            // Kept for the next time.
            for (id, ts) in used {
                self.auth.note_used_at(id, ts);
            }
            return Err(e);
        }
        let t = db.cache()?;
        let msg = format!(
            "{} issued agent token(s) and {} first-use binding(s) in the database",
            t.issued.len(),
            t.file_bindings.len()
        );
        self.auth.set_db_tokens(t);
        Ok(msg)
    }

    /// Run `f` on the tokens database, off the async threads.
    async fn tokens<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut TokenDb) -> Result<T> + Send + 'static,
    {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = app.tokens_db.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut db)
        })
        .await
        .context("the tokens task failed")?
    }

    /// Run `f` on one of the read connections, off the async threads.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, Response>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    {
        let app = self.clone();
        let r = tokio::task::spawn_blocking(move || {
            let i = app.next_reader.fetch_add(1, Ordering::Relaxed) % app.readers.len();
            let mut c = app.readers[i].lock().unwrap_or_else(|e| e.into_inner());
            f(c.as_mut())
        })
        .await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.downcast_ref::<store::Unavailable>().is_some() => {
                Err(unavailable(&format!("{e:#}")))
            }
            Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"))),
            Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        }
    }
}

pub fn error(code: StatusCode, msg: &str) -> Response {
    (code, Json(json!({ "error": msg }))).into_response()
}

/// 503 with `Retry-After`: nothing wrong with the request, try again.
pub fn unavailable(msg: &str) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, "1".parse().expect("static"));
    r
}

/// A refused batch: its status, `{"error": "line N: why", "line": N}`.
fn refused(r: &Refusal) -> Response {
    let code = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match r.line() {
        Some(line) => (code, Json(json!({ "error": r.to_string(), "line": line }))).into_response(),
        None => error(code, &r.to_string()),
    }
}

/// The writer: takes every waiting batch (up to a bound), stores them in
/// one transaction, commits, and only then answers each.
fn writer_loop(mut st: Box<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    const GROUP_EVENTS: usize = 50_000;
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].events.len();
        while n < GROUP_EVENTS {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.events.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<&[ingest::Incoming]> = jobs.iter().map(|j| j.events.as_slice()).collect();
        let res = st.insert_group(&batches);
        drop(batches);
        let replies: Vec<_> = jobs.into_iter().map(|j| j.reply).collect();
        match res {
            Ok(stats) => {
                for (r, s) in replies.into_iter().zip(stats) {
                    let _ = r.send(Ok(s));
                }
            }
            Err(e) => {
                tracing::error!("storing {} batches: {e:#}", replies.len());
                for r in replies {
                    let _ = r.send(Err(format!("{e:#}")));
                }
            }
        }
    }
}

/// Requests being served; beyond the limit, 503 with `Retry-After` (the
/// agent keeps its spool and retries any 5xx). Bounds memory (each POST
/// may hold `--max-body`) and the queue in front of the store.
async fn limit_in_flight(
    State(slots): State<Arc<tokio::sync::Semaphore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_permit) = slots.try_acquire_owned() else {
        return unavailable("too many requests in flight; retry later");
    };
    next.run(req).await
}

/// Every route needs its line in `auth::ROUTES` (who may call it); the
/// guard refuses the ones without. Keep `route_layer` after the last route:
/// it wraps only the routes added before it.
pub fn router(app: Arc<App>, max_in_flight: usize) -> Router {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let guard = axum::middleware::from_fn_with_state(app.auth.clone(), auth::guard);
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login_submit))
        .route("/logout", post(auth::logout))
        .route("/v1/whoami", get(auth::whoami))
        .route("/v1/admin/sessions", get(auth::admin_sessions))
        .route("/v1/admin/reload", post(auth::admin_reload))
        .route(
            "/v1/admin/tokens",
            get(admin_list_tokens).post(admin_issue_token),
        )
        .route(
            "/v1/admin/tokens/{id}",
            axum::routing::delete(admin_revoke_token),
        )
        .route("/v1/events", post(post_events))
        .route("/v1/hosts", get(get_hosts))
        .route("/v1/runs", get(get_runs))
        .route("/v1/runs/{run_id}", get(get_run))
        .route("/v1/certificates/{id}", get(get_certificate))
        .route("/healthz", get(healthz))
        .route("/", get(web::board::board))
        .route("/export.csv", get(web::board::export_csv))
        .route("/export.json", get(web::board::export_json))
        .route("/certificates/{id}", get(web::cert_page))
        .route("/certificates/{id}/pdf", get(web::cert_pdf))
        .route("/hosts/{key}", get(web::host_page))
        .route("/runs/{run_id}", get(web::run_page))
        .route_layer(guard)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(slots, limit_in_flight))
}

/// Start serving; returns when a shutdown signal arrived and every
/// acknowledged batch is committed.
pub fn serve(args: ServeArgs) -> Result<()> {
    tls::check_plain_http(&args.listen, args.tls.is_some(), args.insecure_plain_http)?;
    let tls = match &args.tls {
        Some((c, k)) => Some(Arc::new(tls::Tls::load(c, k)?)),
        None => None,
    };
    let auth = Arc::new(Auth::load(
        &args.tokens,
        args.users.as_deref(),
        tls.is_some(),
    )?);
    let trusted = match &args.trusted_signers {
        Some(p) => Some(Arc::new(cert::TrustedSigners::load(p)?)),
        None => None,
    };
    let conn = store::open(&args.db)?;
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(Mutex::new(store::open(&args.db)?));
    }
    let tokens_db = TokenDb::open(&args.db)?;
    let (tx, rx) = mpsc::channel::<Job>(1024);
    let writer = std::thread::Builder::new()
        .name("db-writer".into())
        .spawn(move || writer_loop(conn, rx))?;
    let app = Arc::new(App {
        auth,
        tls,
        limits: args.limits,
        trusted,
        writer: tx,
        readers,
        next_reader: AtomicUsize::new(0),
        tokens_db: Mutex::new(tokens_db),
    });
    let said = app
        .refresh_tokens(true)
        .context("loading the agent tokens from the database")?;
    eprintln!("speediso-collector: {said}");
    // Dropped last, after the runtime: the PostgreSQL readers' clients
    // must not be dropped on a runtime thread (their drop blocks).
    let keep = app.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Installed before the "listening" line: a SIGHUP sent as soon as
        // that line is read must find the handler, not kill the process.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(reload_on_hup(app.clone(), hup));
        tokio::spawn(refresh_tokens_every(app.clone()));
        // Tests and scripts read this line to learn the port.
        println!("speediso-collector: listening on {addr}");
        let scheme = if app.tls.is_some() { "https" } else { "http" };
        eprintln!("speediso-collector: serving {scheme}://{addr}/");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let svc = router(app.clone(), args.max_in_flight)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        match app.tls.clone() {
            Some(t) => {
                use axum::serve::ListenerExt;
                // tap_io: ConnectInfo<SocketAddr> for a listener of our own.
                let l = tls::TlsListener::new(listener, t)?.tap_io(|_| {});
                axum::serve(l, svc)
                    .with_graceful_shutdown(shutdown_signal())
                    .await
            }
            None => {
                axum::serve(listener, svc)
                    .with_graceful_shutdown(shutdown_signal())
                    .await
            }
        }
        .context("serving")
    })?;
    drop(rt);
    // The last uses noted since the last refresh.
    if let Err(e) = keep.refresh_tokens(false) {
        tracing::warn!("writing the agent tokens' last use: {e:#}");
    }
    drop(keep);
    // Every sender is gone with the router: the writer drains and exits.
    let _ = writer.join();
    eprintln!("speediso-collector: stopped; every acknowledged batch is committed");
    Ok(())
}

/// SIGHUP: re-read the tokens and users files and the TLS pair (adding a
/// host or a user, or renewing the certificate, needs no restart). A
/// broken file is reported and its old contents stay.
async fn reload_on_hup(app: Arc<App>, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        let app = app.clone();
        // Reading files and parsing keys: off the async threads.
        let _ = tokio::task::spawn_blocking(move || app.reload()).await;
    }
}

/// Every `TOKEN_REFRESH`: `App::refresh_tokens` (tokens issued or revoked
/// by the CLI or another collector, last uses written).
async fn refresh_tokens_every(app: Arc<App>) {
    let mut tick = tokio::time::interval(TOKEN_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let a = app.clone();
        match tokio::task::spawn_blocking(move || a.refresh_tokens(false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("refreshing the agent tokens: {e:#}"),
            Err(e) => tracing::warn!("refreshing the agent tokens: {e}"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    eprintln!("speediso-collector: shutting down");
}

/// `POST /v1/events`: the guard has checked the agent token.
async fn post_events(
    State(app): State<Arc<App>>,
    Extension(mut token): Extension<Token>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max = app.limits.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body exceeds the limit of {max} bytes"),
        )
    };
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return too_large();
    }
    let bytes = match read_limited(body, max).await {
        Ok(b) => b,
        Err(None) => return too_large(),
        Err(Some(e)) => return error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")),
    };
    let mut events = match ingest::parse_batch(&bytes, app.limits) {
        Ok(e) => e,
        Err(r) => return refused(&r),
    };
    if token.first_use && token.host.is_none() {
        match bind_first_use(&app, &mut token, &events).await {
            Ok(()) => {}
            Err(r) => return r,
        }
    }
    app.auth.note_used(&token);
    if let Err(r) = ingest::bind(&mut events, &token) {
        return refused(&r);
    }
    let (reply, rx) = oneshot::channel();
    let events = Arc::new(events);
    let job = Job {
        events: events.clone(),
        reply,
    };
    if app.writer.send(job).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let answer = rx.await;
    drop(events);
    match answer {
        Ok(Ok(Ok(stats))) => (StatusCode::OK, Json(stats)).into_response(),
        Ok(Ok(Err(r))) => refused(&r),
        Ok(Err(e)) => unavailable(&format!("not stored: {e}")),
        Err(_) => unavailable("not stored: writer stopped"),
    }
}

/// The first batch of a token that binds on first use: bind it to the
/// batch's one host (`ingest::first_use_identity`) in the database, where
/// of two hosts racing exactly one wins; `token.host` is then whoever won,
/// and `ingest::bind` refuses the loser (403). Binds before the batch is
/// stored: a batch the store refuses (409, a run of another host) still
/// binds the token to the host it came from.
async fn bind_first_use(
    app: &Arc<App>,
    token: &mut Token,
    events: &[ingest::Incoming],
) -> Result<(), Response> {
    let host = match ingest::first_use_identity(events) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(()),
        Err(r) => return Err(refused(&r)),
    };
    let (id, hash) = (token.id.clone(), super::tokens::token_hash(&token.secret));
    let r = app.tokens(move |db| db.bind(&id, &host, Some(&hash))).await;
    match r {
        Ok(Bound::Host(h)) => {
            app.auth.note_binding(token, &h);
            token.host = Some(h);
            Ok(())
        }
        Ok(Bound::Gone) => {
            tracing::warn!("/v1/events: revoked token {}", token.id);
            Err(error(StatusCode::UNAUTHORIZED, "this token was revoked"))
        }
        // Nothing stored and nothing bound: the agent retries.
        Err(e) => Err(unavailable(&format!("binding the token: {e:#}"))),
    }
}

/// The store's answer to a token call: 503 when it cannot be reached.
fn db_error(e: anyhow::Error) -> Response {
    if e.downcast_ref::<store::Unavailable>().is_some() {
        unavailable(&format!("{e:#}"))
    } else {
        error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"))
    }
}

/// `POST /v1/admin/tokens` body (empty: `{}`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    host: Option<String>,
    note: Option<String>,
}

/// `POST /v1/admin/tokens` (admin): `{"host": ID, "note": TEXT}`, both
/// optional (no host: bound to the first host that posts). 201 with the
/// token and its `secret`, which is never shown again.
async fn admin_issue_token(
    State(app): State<Arc<App>>,
    Extension(u): Extension<auth::User>,
    body: axum::body::Bytes,
) -> Response {
    let req: IssueRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IssueRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "body: expected {{\"host\": ID, \"note\": TEXT}} (both optional): {e}"
                    ),
                )
            }
        }
    };
    let checks = [
        req.host.as_deref().map(|h| tokendb::check_host("host", h)),
        req.note.as_deref().map(|n| tokendb::check_note("note", n)),
    ];
    if let Some(Err(e)) = checks.into_iter().flatten().find(Result::is_err) {
        return error(StatusCode::BAD_REQUEST, &format!("{e:#}"));
    }
    let app2 = app.clone();
    let r = app
        .tokens(move |db| db.issue(req.host.as_deref(), req.note.as_deref()))
        .await;
    let issued = match r {
        Ok(i) => i,
        Err(e) => return db_error(e),
    };
    tracing::info!(
        "{} issued agent token {} for {}",
        u.name,
        issued.row.id,
        issued
            .row
            .host
            .as_deref()
            .unwrap_or("the first host that posts with it")
    );
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || app2.refresh_tokens(false)).await {
        tracing::warn!("refreshing the agent tokens: {e:#}");
    }
    (StatusCode::CREATED, Json(issued)).into_response()
}

/// `GET /v1/admin/tokens` (admin): every database token (never a secret).
async fn admin_list_tokens(State(app): State<Arc<App>>) -> Response {
    match app.tokens(|db| db.list()).await {
        Ok(l) => Json(l).into_response(),
        Err(e) => db_error(e),
    }
}

/// `DELETE /v1/admin/tokens/{id}` (admin): revoke an issued token; the
/// next request with it is refused (401). 404: no such token; 409: a
/// tokens-file line (remove it from the file instead).
async fn admin_revoke_token(
    State(app): State<Arc<App>>,
    Extension(u): Extension<auth::User>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let id2 = id.clone();
    let r = app
        .tokens(move |db| {
            Ok(match db.get(&id2)? {
                None => None,
                Some(r) if r.source != "issued" => Some(Err(r)),
                Some(_) => db.revoke(&id2)?.map(Ok),
            })
        })
        .await;
    match r {
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("no token {id}")),
        Ok(Some(Err(_))) => error(
            StatusCode::CONFLICT,
            &format!("token {id} is a host=first-use line of the tokens file: remove the line and reload"),
        ),
        Ok(Some(Ok(row))) => {
            // Refused from the next request on, not after a refresh.
            app.auth.forget_token(&id);
            tracing::info!("{} revoked agent token {id}", u.name);
            Json(row).into_response()
        }
        Err(e) => db_error(e),
    }
}

/// An oversized body is still read (and dropped) up to this size, so the
/// client gets its 413 instead of a broken pipe.
const DRAIN_CAP: usize = 64 << 20;

/// The body if it fits in `max` bytes; otherwise `Err(None)`, after
/// draining up to `DRAIN_CAP` (for at most 10 s); `Err(Some(why))` when the
/// body broke off (nothing of it is used).
async fn read_limited(mut body: Body, max: usize) -> Result<axum::body::Bytes, Option<String>> {
    use axum::body::HttpBody;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let drain_until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
        let frame = if seen > max {
            match tokio::time::timeout_at(drain_until, next).await {
                Ok(f) => f,
                Err(_) => return Err(None),
            }
        } else {
            next.await
        };
        let frame = match frame {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) if seen <= max => return Err(Some(e.to_string())),
            Some(Err(_)) => return Err(None),
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= max {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_CAP {
                return Err(None);
            }
        }
    }
    if seen <= max {
        Ok(buf.into())
    } else {
        Err(None)
    }
}

#[derive(Deserialize)]
pub struct HostsQuery {
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /v1/hosts`: `limit` (default 1000, at most 10000) from `offset`;
/// the total in `X-Total-Count`.
async fn get_hosts(State(app): State<Arc<App>>, Query(q): Query<HostsQuery>) -> Response {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let offset = q.offset.unwrap_or(0);
    match app
        .read(move |s| Ok((s.hosts(limit, offset)?, s.host_count()?)))
        .await
    {
        Ok((h, total)) => {
            let mut r = Json(h).into_response();
            r.headers_mut()
                .insert("x-total-count", total.to_string().parse().expect("digits"));
            r
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct RunsQuery {
    host: Option<String>,
    task: Option<String>,
    limit: Option<usize>,
}

async fn get_runs(State(app): State<Arc<App>>, Query(q): Query<RunsQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    match app
        .read(move |s| {
            s.runs(store::RunFilter {
                host: q.host.as_deref(),
                task: q.task.as_deref(),
                limit,
            })
        })
        .await
    {
        Ok(r) => Json(r).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct RunQuery {
    after_seq: Option<i64>,
    limit: Option<usize>,
    /// `all` (default) or `omit`.
    progress: Option<String>,
}

/// Events per `GET /v1/runs/{id}` page: default and most.
pub const RUN_EVENTS_LIMIT: usize = 5_000;
pub const RUN_EVENTS_MAX: usize = 50_000;

async fn get_run(
    State(app): State<Arc<App>>,
    UrlPath(run_id): UrlPath<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let with_progress = match q.progress.as_deref() {
        None | Some("all") => true,
        Some("omit") => false,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("progress={other:?}: use all or omit"),
            )
        }
    };
    let limit = q.limit.unwrap_or(RUN_EVENTS_LIMIT).clamp(1, RUN_EVENTS_MAX);
    let after = q.after_seq.unwrap_or(-1);
    let res = app
        .read(move |s| {
            let Some(run) = s.run(&run_id)? else {
                return Ok(None);
            };
            let page = store::events_page(s, &run_id, after, limit, with_progress)?;
            Ok(Some(json!({
                "run": run,
                "events": page.events,
                "page": page,
                "results": s.results(&run_id)?,
                "certificates": s.certificate_ids(&run_id)?,
            })))
        })
        .await;
    match res {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such run"),
        Err(r) => r,
    }
}

async fn get_certificate(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    match app.read(move |s| s.certificate(&id)).await {
        Ok(Some((run_id, body))) => {
            let v = cert::verify(&body, app.trusted.as_deref());
            Json(json!({ "run_id": run_id, "certificate": body, "verification": v }))
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such certificate"),
        Err(r) => r,
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.read(|s| s.ping()).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(r) => r,
    }
}
