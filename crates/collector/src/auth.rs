//! Who may do what on the collector. Every route has one entry in
//! [`ROUTES`] (public, agent, viewer or admin); [`guard`] runs before every
//! handler, finds the caller's credential (an agent or role token in
//! `Authorization: Bearer`, or a session cookie from `/login`), and refuses
//! what the credential does not allow. A route missing from the table is
//! refused to everyone (fail closed).
//!
//! Credentials: the tokens file (`tokens.rs`: agent tokens, optionally
//! bound to a host, and `role=viewer|admin` API tokens), the agent tokens
//! the collector issued (`tokendb.rs`, kept here as an in-memory copy
//! looked up by the secret's SHA-256, refreshed on issue, revoke, SIGHUP
//! and every few seconds) and the users file (`name role argon2id-PHC-hash`
//! per line). The files are re-read on SIGHUP; a broken file is reported
//! and the old contents stay.
//!
//! Sessions live in memory only (a restart logs everyone out): a 256-bit
//! random id in an HttpOnly, SameSite=Lax cookie (Secure under TLS), looked
//! up by its SHA-256 and compared in constant time. State-changing requests
//! made with a cookie must come from the collector's own origin (Origin or
//! Referer) and forms carry a per-session CSRF token. Failed logins are
//! logged (name and address, never the password) and limited per client
//! address and per user name.

use super::server::error;
use super::tokens::{ct_eq, read_config, Token, Tokens};
use anyhow::{bail, Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// What a credential may do; an admin may do everything a viewer may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

/// Who a route is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `/healthz`, the login form.
    Public,
    /// Agent tokens only (`POST /v1/events`).
    Agent,
    /// Viewer or admin (every read).
    Role(Role),
}

/// Every route of the router, with who may use it. `server::router` adds
/// routes only through this table's paths; [`guard`] refuses any route
/// that is not here. HEAD is treated as GET.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/login", Access::Public),
    ("POST", "/login", Access::Public),
    // Public so an expired session can still log out; it checks the
    // session's CSRF token itself.
    ("POST", "/logout", Access::Public),
    ("POST", "/v1/events", Access::Agent),
    ("GET", "/v1/hosts", Access::Role(Role::Viewer)),
    ("GET", "/v1/runs", Access::Role(Role::Viewer)),
    ("GET", "/v1/runs/{run_id}", Access::Role(Role::Viewer)),
    ("GET", "/v1/certificates/{id}", Access::Role(Role::Viewer)),
    ("GET", "/v1/whoami", Access::Role(Role::Viewer)),
    ("GET", "/v1/admin/sessions", Access::Role(Role::Admin)),
    ("POST", "/v1/admin/reload", Access::Role(Role::Admin)),
    ("GET", "/v1/admin/tokens", Access::Role(Role::Admin)),
    ("POST", "/v1/admin/tokens", Access::Role(Role::Admin)),
    ("DELETE", "/v1/admin/tokens/{id}", Access::Role(Role::Admin)),
    ("GET", "/", Access::Role(Role::Viewer)),
    ("GET", "/hosts/{key}", Access::Role(Role::Viewer)),
    ("GET", "/runs/{run_id}", Access::Role(Role::Viewer)),
    ("GET", "/export.csv", Access::Role(Role::Viewer)),
    ("GET", "/export.json", Access::Role(Role::Viewer)),
    ("GET", "/certificates/{id}", Access::Role(Role::Viewer)),
    ("GET", "/certificates/{id}/pdf", Access::Role(Role::Viewer)),
];

/// The table's entry for a matched route.
pub fn access(method: &Method, path: &str) -> Option<Access> {
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(rm, rp, _)| *rm == m && *rp == path)
        .map(|(_, _, a)| *a)
}

/// A person or API client with a role: put in the request's extensions by
/// [`guard`] for every viewer/admin route. Page handlers take
/// `Extension(user): Extension<auth::User>`.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The session's CSRF token (for forms that change state, e.g.
    /// [`logout_form`]); `None` for a bearer token.
    pub csrf: Option<String>,
}

/// The users file: `name role hash` per line, `#` comments. The hash is an
/// argon2id PHC string (`speediso-collector hash-password` prints a line).
#[derive(Debug, Clone, Default)]
pub struct Users(pub Vec<UserEntry>);

#[derive(Debug, Clone)]
pub struct UserEntry {
    pub name: String,
    pub role: Role,
    pub hash: String,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

impl Users {
    pub fn load(path: &Path) -> Result<Users> {
        Self::parse(&read_config(path)?).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Users> {
        let mut v: Vec<UserEntry> = Vec::new();
        // Not `config_lines`: a PHC string has no '#', but keep the rule
        // the same: '#' starts a comment.
        for (n, line) in super::tokens::config_lines(text) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let [name, role, hash] = w.as_slice() else {
                bail!(
                    "line {n}: expected `name role hash` (role viewer or admin), got {} word(s)",
                    w.len()
                );
            };
            if !valid_name(name) {
                bail!("line {n}: user name {name:?}: use 1-64 of A-Z a-z 0-9 . _ @ -");
            }
            let Some(role) = Role::parse(role) else {
                bail!("line {n}: role {role:?} for {name}: use viewer or admin");
            };
            let ph = PasswordHash::new(hash).map_err(|e| {
                anyhow::anyhow!("line {n}: hash of {name} is not a PHC string: {e}")
            })?;
            if ph.algorithm.as_str() != "argon2id" {
                bail!(
                    "line {n}: hash of {name} uses {:?}; only argon2id (speediso-collector hash-password)",
                    ph.algorithm.as_str()
                );
            }
            if v.iter().any(|u| u.name == *name) {
                bail!("line {n}: user {name} listed twice");
            }
            v.push(UserEntry {
                name: name.to_string(),
                role,
                hash: hash.to_string(),
            });
        }
        Ok(Users(v))
    }

    /// The user's role if `password` is theirs. An unknown name costs the
    /// same hash as a known one, so timing does not tell names apart.
    pub fn verify(&self, name: &str, password: &str) -> Option<Role> {
        let entry = self.0.iter().find(|u| u.name == name);
        let hash = entry.map(|u| u.hash.as_str()).unwrap_or(DUMMY_HASH);
        let ok = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        match entry {
            Some(u) if ok => Some(u.role),
            _ => None,
        }
    }
}

/// Verified against when the name is unknown (the hash of a random
/// password nobody knows, with the default parameters).
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3BlZWRpc28tZHVtbXk$R8w2pBg0r3xYcmZbmE7bWj1a5k0l9kq6Sx8mFhQ2b0E";

/// `hash-password`: the argon2id PHC string of `password` (default
/// parameters, random 128-bit salt).
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).context("reading random bytes for the salt")?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
        .to_string())
}

/// 32 random bytes as 64 hex digits.
fn random_id() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the OS random generator");
    hex::encode(b)
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// How long a session lasts from login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
pub const SESSION_COOKIE: &str = "speediso_session";
/// The login form's double-submit token cookie (before any session).
pub const LOGIN_CSRF_COOKIE: &str = "speediso_login_csrf";

struct Session {
    /// The id itself, compared in constant time after the lookup by hash.
    id: String,
    user: String,
    role: Role,
    csrf: String,
    created: SystemTime,
    expires: Instant,
}

/// Failed attempts per key in the last [`FAIL_WINDOW`].
#[derive(Default)]
pub struct Limiter {
    fails: Mutex<HashMap<String, VecDeque<Instant>>>,
}

pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
pub const FAILS_ALLOWED: usize = 5;

impl Limiter {
    /// `Some(seconds to wait)` when `key` has used up its attempts.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<u64> {
        let mut m = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        let q = m.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAIL_WINDOW)
        {
            q.pop_front();
        }
        if q.len() < FAILS_ALLOWED {
            return None;
        }
        let oldest = *q.front()?;
        Some((FAIL_WINDOW - now.duration_since(oldest)).as_secs().max(1))
    }

    pub fn fail(&self, key: &str, now: Instant) {
        let mut m = self.fails.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            // Bound the memory an attacker cycling names can take.
            m.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < FAIL_WINDOW)
            });
        }
        let q = m.entry(key.to_string()).or_default();
        q.push_back(now);
        if q.len() > FAILS_ALLOWED {
            q.pop_front();
        }
    }
}

/// Credentials, sessions and the login limiter; one per collector.
pub struct Auth {
    tokens_path: PathBuf,
    users_path: Option<PathBuf>,
    tokens: RwLock<Tokens>,
    /// The database's agent tokens (issued ones, first-use bindings).
    db: RwLock<super::tokendb::DbTokens>,
    /// Last use of the database's tokens since the last write (id → RFC
    /// 3339), written every `server::TOKEN_REFRESH`.
    used: Mutex<HashMap<String, String>>,
    users: RwLock<Users>,
    /// Keyed by the SHA-256 of the session id.
    sessions: Mutex<HashMap<String, Session>>,
    pub limiter: Limiter,
    /// Served over TLS: cookies get `Secure`.
    pub secure_cookies: bool,
}

impl Auth {
    pub fn load(tokens: &Path, users: Option<&Path>, secure_cookies: bool) -> Result<Auth> {
        let t = Tokens::load(tokens)?;
        let u = match users {
            Some(p) => Users::load(p)?,
            None => Users::default(),
        };
        Ok(Auth {
            tokens_path: tokens.to_path_buf(),
            users_path: users.map(Path::to_path_buf),
            tokens: RwLock::new(t),
            db: RwLock::default(),
            used: Mutex::default(),
            users: RwLock::new(u),
            sessions: Mutex::new(HashMap::new()),
            limiter: Limiter::default(),
            secure_cookies,
        })
    }

    /// For tests of the router without files.
    pub fn new(tokens: Tokens, users: Users, secure_cookies: bool) -> Auth {
        Auth {
            tokens_path: PathBuf::new(),
            users_path: None,
            tokens: RwLock::new(tokens),
            db: RwLock::default(),
            used: Mutex::default(),
            users: RwLock::new(users),
            sessions: Mutex::new(HashMap::new()),
            limiter: Limiter::default(),
            secure_cookies,
        }
    }

    /// SIGHUP: re-read the tokens and users files; each one that does not
    /// parse is reported and keeps its old contents. Returns the messages.
    pub fn reload(&self) -> Vec<String> {
        let mut said = Vec::new();
        match Tokens::load(&self.tokens_path) {
            Ok(t) => {
                said.push(format!(
                    "reloaded {} token(s) from {}",
                    t.0.len(),
                    self.tokens_path.display()
                ));
                *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = t;
            }
            Err(e) => said.push(format!("keeping the old tokens: {e:#}")),
        }
        if let Some(p) = &self.users_path {
            match Users::load(p) {
                Ok(u) => {
                    said.push(format!(
                        "reloaded {} user(s) from {}",
                        u.0.len(),
                        p.display()
                    ));
                    let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
                    *users = u;
                    // A removed user or a changed role ends their sessions.
                    let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                    s.retain(|_, v| users.0.iter().any(|u| u.name == v.user && u.role == v.role));
                }
                Err(e) => said.push(format!("keeping the old users: {e:#}")),
            }
        }
        for m in &said {
            eprintln!("speediso-collector: {m}");
        }
        said
    }

    /// The token for an `Authorization` header value: the tokens file
    /// first, then the database's tokens. A first-use token comes with its
    /// binding (`host`, `None` while unbound).
    pub fn token(&self, header: Option<&str>) -> Option<Token> {
        let file = self
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .check(header)
            .cloned();
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        if let Some(mut t) = file {
            if t.first_use {
                t.host = db.file_bindings.get(&t.id).cloned();
            }
            return Some(t);
        }
        // By the SHA-256 of the secret (a lookup that times only a hash of
        // it), then that hash compared in constant time, as sessions are.
        let given = header?.strip_prefix("Bearer ")?.trim();
        let hash = super::tokens::token_hash(given);
        let (stored, (id, host)) = db.issued.get_key_value(&hash)?;
        ct_eq(stored.as_bytes(), hash.as_bytes()).then(|| Token {
            secret: given.to_string(),
            host: host.clone(),
            role: None,
            id: id.clone(),
            first_use: host.is_none(),
        })
    }

    /// The tokens file's `host=first-use` tokens as `(id, hash)`: what
    /// `TokenDb::register_file` keeps rows for.
    pub fn first_use_file_tokens(&self) -> Vec<(String, String)> {
        let t = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        t.0.iter()
            .filter(|t| t.first_use)
            .map(|t| (t.id.clone(), super::tokens::token_hash(&t.secret)))
            .collect()
    }

    /// Replace the copy of the database's tokens.
    pub fn set_db_tokens(&self, t: super::tokendb::DbTokens) {
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = t;
    }

    /// A first-use token was bound (by this collector or, as the database
    /// said, another one): from now on it is a host token.
    pub fn note_binding(&self, token: &Token, host: &str) {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        let hash = super::tokens::token_hash(&token.secret);
        match db.issued.get_mut(&hash) {
            Some(e) => e.1 = Some(host.to_string()),
            None => {
                db.file_bindings.insert(token.id.clone(), host.to_string());
            }
        }
    }

    /// A revoked token: out of the copy now (the next refresh agrees).
    pub fn forget_token(&self, id: &str) {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        db.issued.retain(|_, (i, _)| i != id);
        db.known.remove(id);
    }

    /// A token posted events: remembered for `token list`'s "last used"
    /// when the database knows it.
    pub fn note_used(&self, token: &Token) {
        let known = self
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .known
            .contains(&token.id);
        if known || token.first_use {
            self.used
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(token.id.clone(), speediso_proto::events::rfc3339_now());
        }
    }

    /// Put back a last use that could not be written (unless a later one
    /// was noted meanwhile).
    pub fn note_used_at(&self, id: String, ts: String) {
        let mut u = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let e = u.entry(id).or_insert_with(|| ts.clone());
        if *e < ts {
            *e = ts;
        }
    }

    /// The last uses noted since the last call.
    pub fn take_used(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    pub fn verify_password(&self, name: &str, password: &str) -> Option<Role> {
        // Cloned out so the hashing does not hold the lock.
        let users = self.users.read().unwrap_or_else(|e| e.into_inner()).clone();
        users.verify(name, password)
    }

    /// A new session; returns its id (the cookie value).
    pub fn open_session(&self, user: &str, role: Role) -> String {
        let id = random_id();
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| v.expires > now);
        s.insert(
            sha256_hex(&id),
            Session {
                id: id.clone(),
                user: user.to_string(),
                role,
                csrf: random_id(),
                created: SystemTime::now(),
                expires: now + SESSION_TTL,
            },
        );
        id
    }

    /// The user of a live session.
    pub fn session(&self, id: &str) -> Option<User> {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let v = s.get(&sha256_hex(id))?;
        (ct_eq(v.id.as_bytes(), id.as_bytes()) && v.expires > Instant::now()).then(|| User {
            name: v.user.clone(),
            role: v.role,
            csrf: Some(v.csrf.clone()),
        })
    }

    pub fn close_session(&self, id: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.remove(&sha256_hex(id));
    }

    /// `GET /v1/admin/sessions`: who is logged in (never the ids).
    pub fn sessions_json(&self) -> serde_json::Value {
        let now = Instant::now();
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<serde_json::Value> = s
            .values()
            .filter(|v| v.expires > now)
            .map(|v| {
                serde_json::json!({
                    "user": v.user,
                    "role": v.role,
                    "since_unix": v.created.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                    "expires_in_s": v.expires.duration_since(now).as_secs(),
                })
            })
            .collect();
        v.sort_by(|a, b| a["user"].as_str().cmp(&b["user"].as_str()));
        serde_json::Value::Array(v)
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64, same_site: &str) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}")
            .parse()
            .expect("cookie characters")
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Pages (not `/v1/`): a browser is sent to the login form.
fn is_page(path: &str) -> bool {
    !path.starts_with("/v1/")
}

fn unauthorized(msg: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"speediso-collector\""),
    );
    r
}

fn forbidden(msg: &str) -> Response {
    error(StatusCode::FORBIDDEN, msg)
}

/// `next` for the login form: only a path on this server (no scheme, no
/// `//host`, no backslash tricks, no control characters); otherwise `/`.
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.bytes().any(|b| b.is_ascii_control() || b == b' ');
    if ok {
        next
    } else {
        "/"
    }
}

fn to_login(path_and_query: &str) -> Response {
    let next = super::web::url_seg(safe_next(path_and_query));
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(
        header::LOCATION,
        format!("/login?next={next}").parse().expect("encoded"),
    );
    r
}

/// A state-changing request made with a cookie must come from a page of
/// this collector: its `Origin` (or, without one, `Referer`) names the
/// `Host` it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(from) = from else {
        return false;
    };
    let Some(rest) = from
        .strip_prefix("https://")
        .or_else(|| from.strip_prefix("http://"))
    else {
        return false;
    };
    rest.split('/').next() == Some(host)
}

fn client_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs before every handler (a `route_layer`): the route's [`Access`]
/// against the caller's credential. Puts the agent's [`Token`] or the
/// [`User`] in the request's extensions.
pub async fn guard(
    State(auth): State<std::sync::Arc<Auth>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let Some(access) = path.as_deref().and_then(|p| access(req.method(), p)) else {
        tracing::error!(
            "{} {}: route has no entry in auth::ROUTES; refused",
            req.method(),
            req.uri().path()
        );
        return forbidden("this route has no access rule; refused");
    };
    let uri_path = req.uri().path().to_string();
    let page = is_page(&uri_path);
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let token = authz.as_deref().and_then(|h| auth.token(Some(h)));
    match access {
        Access::Public => {}
        Access::Agent => {
            let Some(t) = token else {
                if authz.is_some() {
                    tracing::warn!("{uri_path}: unknown bearer token from {}", client_ip(&req));
                }
                return unauthorized(
                    "missing or unknown bearer token (Authorization: Bearer <token>)",
                );
            };
            if t.role.is_some() {
                return forbidden("a viewer/admin token cannot post events; use an agent token");
            }
            req.extensions_mut().insert(t);
        }
        Access::Role(need) => {
            let user = match (&authz, token) {
                (Some(_), Some(t)) => match t.role {
                    None => {
                        return forbidden("an agent token may only post events; reads need a viewer or admin credential")
                    }
                    Some(role) => User {
                        name: format!("token:{}", t.id),
                        role,
                        csrf: None,
                    },
                },
                (Some(_), None) => {
                    tracing::warn!("{uri_path}: unknown bearer token from {}", client_ip(&req));
                    return unauthorized("unknown bearer token");
                }
                (None, _) => {
                    let Some(u) = cookie_value(req.headers(), SESSION_COOKIE).and_then(|id| auth.session(id)) else {
                        if page {
                            let pq = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str().to_string())
                                .unwrap_or_else(|| uri_path.clone());
                            return to_login(&pq);
                        }
                        return unauthorized("log in (POST /login) or send Authorization: Bearer <viewer or admin token>");
                    };
                    let m = req.method();
                    if m != Method::GET && m != Method::HEAD && !same_origin(req.headers()) {
                        return forbidden("cross-origin request refused (Origin does not match Host)");
                    }
                    u
                }
            };
            if user.role < need {
                return forbidden(&format!(
                    "{} needs the {} role; {} is {}",
                    uri_path,
                    need.as_str(),
                    user.name,
                    user.role.as_str()
                ));
            }
            req.extensions_mut().insert(user);
        }
    }
    next.run(req).await
}

const LOGIN_CSS: &str = "body{font-family:sans-serif;margin:3em auto;max-width:22em;color:#222}label{display:block;margin:.6em 0}input{width:100%;padding:.3em}.error{color:#b00020;font-weight:bold}";

fn login_page(
    code: StatusCode,
    next: &str,
    csrf: &str,
    msg: Option<&str>,
    auth: &Auth,
) -> Response {
    use super::web::esc;
    let msg = msg
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m)))
        .unwrap_or_default();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in - speediso</title><style>{LOGIN_CSS}</style></head>\n<body><h1>speediso collector</h1>{msg}\n<form method=\"post\" action=\"/login\">\n<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"next\" value=\"{}\">\n<label>User <input name=\"user\" autocomplete=\"username\" required autofocus></label>\n<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n<button type=\"submit\">Log in</button></form></body></html>\n",
        esc(csrf),
        esc(safe_next(next))
    );
    let mut r = (code, Html(html)).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        auth.cookie(LOGIN_CSRF_COOKIE, csrf, 3600, "Strict"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn query_next(req: &Request) -> String {
    req.uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| "/".into())
}

/// `GET /login?next=/path`: the form.
pub async fn login_form(
    State(app): State<std::sync::Arc<super::server::App>>,
    req: Request,
) -> Response {
    login_page(
        StatusCode::OK,
        &query_next(&req),
        &random_id(),
        None,
        &app.auth,
    )
}

/// `POST /login` (form: user, password, csrf, next): a session cookie and
/// a redirect to `next`; 401 with the form again; 429 when limited.
pub async fn login_submit(
    State(app): State<std::sync::Arc<super::server::App>>,
    req: Request,
) -> Response {
    let auth = &app.auth;
    let ip = client_ip(&req);
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 << 10).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "login form larger than 16 KiB",
        );
    };
    let mut f: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&bytes) {
        f.insert(k.into_owned(), v.into_owned());
    }
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let (user, password, next) = (get("user"), get("password"), get("next"));
    let fresh = random_id();
    // Login CSRF: the form's token must equal its cookie (double submit),
    // and a browser's Origin, when sent, must be this server.
    let csrf_ok = cookie_value(&parts.headers, LOGIN_CSRF_COOKIE)
        .is_some_and(|c| !c.is_empty() && ct_eq(c.as_bytes(), get("csrf").as_bytes()));
    let origin_ok = parts.headers.get(header::ORIGIN).is_none() || same_origin(&parts.headers);
    if !csrf_ok || !origin_ok {
        tracing::warn!("login for {user:?} from {ip}: refused, bad CSRF token or origin");
        return login_page(
            StatusCode::FORBIDDEN,
            next,
            &fresh,
            Some("The form expired or came from another site; try again."),
            auth,
        );
    }
    let now = Instant::now();
    let keys = [format!("ip:{ip}"), format!("user:{user}")];
    if let Some(wait) = keys
        .iter()
        .filter_map(|k| auth.limiter.blocked(k, now))
        .max()
    {
        tracing::warn!(
            "login for {user:?} from {ip}: refused, too many failed attempts; retry in {wait} s"
        );
        let mut r = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            next,
            &fresh,
            Some(&format!("Too many failed attempts; try again in {wait} s.")),
            auth,
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            wait.to_string().parse().expect("digits"),
        );
        return r;
    }
    let name = user.to_string();
    let pw = password.to_string();
    let app2 = app.clone();
    let role = tokio::task::spawn_blocking(move || app2.auth.verify_password(&name, &pw))
        .await
        .ok()
        .flatten();
    let Some(role) = role else {
        for k in &keys {
            auth.limiter.fail(k, now);
        }
        tracing::warn!("login failed for user {user:?} from {ip}");
        return login_page(
            StatusCode::UNAUTHORIZED,
            next,
            &fresh,
            Some("Wrong user name or password."),
            auth,
        );
    };
    tracing::info!("{user} ({}) logged in from {ip}", role.as_str());
    let id = auth.open_session(user, role);
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(safe_next(next)).unwrap_or(HeaderValue::from_static("/")),
    );
    h.append(
        header::SET_COOKIE,
        auth.cookie(SESSION_COOKIE, &id, SESSION_TTL.as_secs(), "Lax"),
    );
    h.append(
        header::SET_COOKIE,
        auth.cookie(LOGIN_CSRF_COOKIE, "", 0, "Strict"),
    );
    r
}

/// `POST /logout` (form: csrf): ends the session, back to the login form.
pub async fn logout(
    State(app): State<std::sync::Arc<super::server::App>>,
    req: Request,
) -> Response {
    let auth = &app.auth;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 10)
        .await
        .unwrap_or_default();
    let csrf = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if let Some(id) = cookie_value(&parts.headers, SESSION_COOKIE) {
        if let Some(u) = auth.session(id) {
            let token_ok = u
                .csrf
                .as_deref()
                .is_some_and(|c| ct_eq(c.as_bytes(), csrf.as_bytes()));
            if !token_ok || !same_origin(&parts.headers) {
                return forbidden("logout needs the form's CSRF token from this server");
            }
            auth.close_session(id);
            tracing::info!("{} logged out", u.name);
        }
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/login"));
    r.headers_mut().insert(
        header::SET_COOKIE,
        auth.cookie(SESSION_COOKIE, "", 0, "Lax"),
    );
    r
}

/// A "Log out" button for a page (carries the session's CSRF token);
/// empty for a bearer-token client.
pub fn logout_form(user: &User) -> String {
    match &user.csrf {
        Some(c) => format!(
            "<form method=\"post\" action=\"/logout\" style=\"display:inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Log out {}</button></form>",
            super::web::esc(c),
            super::web::esc(&user.name)
        ),
        None => String::new(),
    }
}

/// `GET /v1/whoami`: the caller's name and role, and for a session its
/// CSRF token (what a form that changes state sends back; another site's
/// page cannot read this response).
pub async fn whoami(axum::Extension(u): axum::Extension<User>) -> Response {
    axum::Json(serde_json::json!({ "user": u.name, "role": u.role, "csrf": u.csrf }))
        .into_response()
}

/// `GET /v1/admin/sessions` (admin): who is logged in.
pub async fn admin_sessions(State(app): State<std::sync::Arc<super::server::App>>) -> Response {
    axum::Json(app.auth.sessions_json()).into_response()
}

/// `POST /v1/admin/reload` (admin): what SIGHUP does (tokens, users, TLS
/// certificate), answering what was reloaded and what was kept.
pub async fn admin_reload(
    State(app): State<std::sync::Arc<super::server::App>>,
    axum::Extension(u): axum::Extension<User>,
) -> Response {
    tracing::info!("reload asked by {}", u.name);
    // Off the async threads: files, keys and the database's tokens.
    let app2 = app.clone();
    let said = tokio::task::spawn_blocking(move || app2.reload())
        .await
        .unwrap_or_else(|e| vec![format!("keeping the old state: reload panicked: {e}")]);
    let ok = !said.iter().any(|m| m.starts_with("keeping"));
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        code,
        axum::Json(serde_json::json!({ "ok": ok, "messages": said })),
    )
        .into_response()
}

/// `speediso-collector hash-password`: reads one password line from
/// `input` and returns the users-file line for `name` and `role`.
pub fn hash_password_line(
    name: &str,
    role: &str,
    input: &mut dyn std::io::BufRead,
) -> Result<String> {
    if !valid_name(name) {
        bail!("user name {name:?}: use 1-64 of A-Z a-z 0-9 . _ @ -");
    }
    let Some(role) = Role::parse(role) else {
        bail!("--role {role:?}: use viewer or admin");
    };
    let mut pw = String::new();
    input
        .read_line(&mut pw)
        .context("reading the password from stdin")?;
    let pw = pw.strip_suffix('\n').unwrap_or(&pw);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.chars().count() < 8 {
        bail!("password shorter than 8 characters (read one line from stdin)");
    }
    Ok(format!("{name} {} {}", role.as_str(), hash_password(pw)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_users_file() {
        let line = hash_password_line("ops", "admin", &mut "correct horse\n".as_bytes()).unwrap();
        assert!(line.starts_with("ops admin $argon2id$"), "{line}");
        let users = Users::parse(&format!("# ops\n{line}\n")).unwrap();
        assert_eq!(users.verify("ops", "correct horse"), Some(Role::Admin));
        assert_eq!(users.verify("ops", "correct hors"), None);
        assert_eq!(users.verify("nobody", "correct horse"), None);
        assert!(hash_password_line("ops", "root", &mut "correct horse\n".as_bytes()).is_err());
        assert!(hash_password_line("ops", "viewer", &mut "short\n".as_bytes()).is_err());
        assert!(hash_password_line("a b", "viewer", &mut "long enough\n".as_bytes()).is_err());
    }

    #[test]
    fn users_file_errors_name_the_line() {
        let e = Users::parse("ops admin\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = Users::parse(
            "ops root $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"root\""), "{e}");
        let e = Users::parse("ops admin $2b$12$abcdefghijklmnopqrstuv\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = Users::parse(
            "ops admin $argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("argon2id"), "{e}");
        assert!(Users::parse("# nobody yet\n").unwrap().0.is_empty());
    }

    #[test]
    fn dummy_hash_parses() {
        // Else an unknown name would answer faster than a known one.
        let h = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(h.algorithm.as_str(), "argon2id");
    }

    #[test]
    fn next_is_only_a_local_path() {
        assert_eq!(safe_next("/runs/r1?x=1"), "/runs/r1?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "evil",
            "",
            "/a\r\nSet-Cookie: x",
            "/ x",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn limiter_blocks_after_five_in_a_minute() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..FAILS_ALLOWED {
            assert_eq!(l.blocked("ip:1", t0), None, "attempt {i}");
            l.fail("ip:1", t0);
        }
        let wait = l.blocked("ip:1", t0 + Duration::from_secs(10)).unwrap();
        assert!((49..=50).contains(&wait), "{wait}");
        assert_eq!(l.blocked("ip:2", t0), None);
        assert_eq!(l.blocked("ip:1", t0 + FAIL_WINDOW), None);
    }

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "c.example:8470".parse().unwrap());
        assert!(!same_origin(&h), "no origin, no referer");
        h.insert(header::ORIGIN, "https://c.example:8470".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            "https://c.example:8470.evil.example".parse().unwrap(),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert(
            header::REFERER,
            "http://c.example:8470/runs/x".parse().unwrap(),
        );
        assert!(same_origin(&h));
    }

    #[test]
    fn sessions_expire_and_close() {
        let a = Auth::new(
            Tokens::parse("agent-token-1\n").unwrap(),
            Users::default(),
            false,
        );
        let id = a.open_session("ops", Role::Viewer);
        assert_eq!(id.len(), 64);
        let u = a.session(&id).unwrap();
        assert_eq!((u.name.as_str(), u.role), ("ops", Role::Viewer));
        assert!(a.session(&id[..63]).is_none());
        assert!(a.session("").is_none());
        a.close_session(&id);
        assert!(a.session(&id).is_none());
    }

    /// Fail closed: a route added to the router without its line in
    /// ROUTES answers 403 to everyone, admin included.
    #[test]
    fn a_route_without_a_rule_is_refused() {
        use axum::routing::get;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let code = rt.block_on(async {
            let auth = std::sync::Arc::new(Auth::new(
                Tokens::parse("role=admin admin-token-1\n").unwrap(),
                Users::default(),
                false,
            ));
            let app = axum::Router::new()
                .route("/v1/forgotten", get(|| async { "secret" }))
                .route_layer(axum::middleware::from_fn_with_state(auth, guard));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(l, app).await });
            tokio::task::spawn_blocking(move || {
                match ureq::get(&format!("http://{addr}/v1/forgotten"))
                    .set("Authorization", "Bearer admin-token-1")
                    .call()
                {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(c, _)) => c,
                    Err(e) => panic!("{e}"),
                }
            })
            .await
            .unwrap()
        });
        assert_eq!(code, 403);
    }

    #[test]
    fn every_route_has_one_rule() {
        for (i, (m, p, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i].iter().any(|(m2, p2, _)| m2 == m && p2 == p),
                "{m} {p} listed twice"
            );
        }
        assert_eq!(access(&Method::HEAD, "/healthz"), Some(Access::Public));
        assert_eq!(access(&Method::DELETE, "/v1/hosts"), None);
    }
}
