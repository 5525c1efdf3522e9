//! Agent tokens in the collector's database (table `agent_tokens`,
//! migration 5): the ones the collector issues (`token issue`, `POST
//! /v1/admin/tokens`), bound to a host when issued or by their first
//! batch, and the host bindings of the tokens file's `host=first-use`
//! lines. Only hashes are stored, never a secret.
//!
//! Its own small connection (SQLite or PostgreSQL, like `store::open`)
//! rather than the `Store` trait: these calls are rare (issue, revoke,
//! list, a token's first batch, the periodic cache refresh) and stay
//! off the event write path. `Auth` serves lookups from an in-memory copy
//! (`DbTokens`) so ingest does no query per request.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A stored token as `token list` and `GET /v1/admin/tokens` show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenRow {
    /// `tokens::token_id`: what runs record and logs name.
    pub id: String,
    /// `issued` (by the collector) or `file` (a `host=first-use` line).
    pub source: String,
    /// The host identity it is bound to; `None`: unbound.
    pub host: Option<String>,
    pub note: Option<String>,
    pub issued_at: String,
    pub bound_at: Option<String>,
    /// Up to `server::TOKEN_REFRESH` behind: kept in memory between writes.
    pub last_used: Option<String>,
    pub revoked_at: Option<String>,
}

/// A token just issued: its row and the secret, shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    #[serde(flatten)]
    pub row: TokenRow,
    pub secret: String,
}

/// What the first batch of a first-use token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Bound to this host: by this call, or already (by whoever won).
    Host(String),
    /// Revoked, or no such token: refuse as an unknown token (401).
    Gone,
}

const COLS: &str = "id, source, host, note, issued_at, bound_at, last_used, revoked_at";

/// The SQL, `$n` placeholders in order of first use (SQLite binds them
/// positionally too; `store::sql` does the same).
mod sql {
    pub const INSERT: &str = "INSERT INTO agent_tokens \
        (id, hash, source, host, note, issued_at) VALUES ($1, $2, 'issued', $3, $4, $5)";
    pub const REGISTER_FILE: &str = "INSERT INTO agent_tokens (id, hash, source, issued_at) \
        VALUES ($1, $2, 'file', $3) ON CONFLICT (id) DO NOTHING";
    /// The atomic bind: only while unbound, so of two hosts racing on one
    /// token exactly one changes the row.
    pub const BIND: &str = "UPDATE agent_tokens SET host = $1, bound_at = $2 \
        WHERE id = $3 AND host IS NULL AND revoked_at IS NULL";
    pub const REVOKE: &str = "UPDATE agent_tokens SET revoked_at = $1 \
        WHERE id = $2 AND revoked_at IS NULL AND source = 'issued'";
    pub const TOUCH: &str = "UPDATE agent_tokens SET last_used = $1 \
        WHERE id = $2 AND (last_used IS NULL OR last_used < $1)";
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Pg(postgres::Client),
}

type Row = Vec<Option<String>>;

impl Conn {
    fn exec(&mut self, q: &str, p: &[Option<&str>]) -> Result<u64> {
        match self {
            Conn::Sqlite(c) => {
                Ok(c.prepare_cached(q)?
                    .execute(rusqlite::params_from_iter(p.iter()))? as u64)
            }
            Conn::Pg(c) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|v| v as _).collect();
                Ok(c.execute(q, &p)?)
            }
        }
    }

    /// `q` once per parameter row, in one transaction (one commit: the
    /// periodic last-use write must not cost a sync per token).
    fn exec_many(&mut self, q: &str, rows: &[Vec<Option<&str>>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Conn::Sqlite(c) => {
                let tx = c.transaction()?;
                {
                    let mut st = tx.prepare_cached(q)?;
                    for r in rows {
                        st.execute(rusqlite::params_from_iter(r.iter()))?;
                    }
                }
                tx.commit()?;
            }
            Conn::Pg(c) => {
                let mut tx = c.transaction()?;
                let st = tx.prepare(q)?;
                for r in rows {
                    let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                        r.iter().map(|v| v as _).collect();
                    tx.execute(&st, &p)?;
                }
                tx.commit()?;
            }
        }
        Ok(())
    }

    /// Every row, every column as text (all of `agent_tokens` is).
    fn query(&mut self, q: &str, p: &[Option<&str>]) -> Result<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => {
                let mut s = c.prepare_cached(q)?;
                let n = s.column_count();
                let rows = s.query_map(rusqlite::params_from_iter(p.iter()), |r| {
                    (0..n).map(|i| r.get(i)).collect::<rusqlite::Result<Row>>()
                })?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            Conn::Pg(c) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|v| v as _).collect();
                Ok(c.query(q, &p)?
                    .iter()
                    .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                    .collect())
            }
        }
    }
}

fn row(r: Row) -> TokenRow {
    let mut it = r.into_iter();
    let mut next = || it.next().flatten();
    TokenRow {
        id: next().unwrap_or_default(),
        source: next().unwrap_or_default(),
        host: next(),
        note: next(),
        issued_at: next().unwrap_or_default(),
        bound_at: next(),
        last_used: next(),
        revoked_at: next(),
    }
}

/// The agent tokens of one database. A connection that fails is dropped
/// and reopened by the next call; meanwhile calls fail with
/// `store::Unavailable` (the server answers 503, agents retry).
pub struct TokenDb {
    spec: String,
    conn: Option<Conn>,
}

impl TokenDb {
    /// Open the store `spec` names (as `store::open`: migrated first).
    pub fn open(spec: &str) -> Result<TokenDb> {
        drop(super::store::open(spec)?);
        let mut db = TokenDb {
            spec: spec.to_string(),
            conn: None,
        };
        db.conn()?;
        Ok(db)
    }

    fn conn(&mut self) -> Result<&mut Conn> {
        if let Some(Conn::Pg(c)) = &self.conn {
            if c.is_closed() {
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            let spec = &self.spec;
            let c = if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
                let (mut config, tls) = super::pg::parse_url(spec)?;
                if config.get_connect_timeout().is_none() {
                    config.connect_timeout(std::time::Duration::from_secs(5));
                }
                let client = match tls {
                    Some(t) => config.connect(t),
                    None => config.connect(postgres::NoTls),
                };
                Conn::Pg(
                    client
                        .context("connecting to PostgreSQL for the agent tokens")
                        .context(super::store::Unavailable)?,
                )
            } else {
                let c =
                    rusqlite::Connection::open(spec).with_context(|| format!("opening {spec}"))?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                Conn::Sqlite(c)
            };
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// Run `f` on the connection; on a PostgreSQL error that closed it,
    /// drop it and say `Unavailable`.
    fn call<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let r = f(self.conn()?);
        if r.is_err() {
            if let Some(Conn::Pg(c)) = &self.conn {
                if c.is_closed() {
                    self.conn = None;
                    return r.context(super::store::Unavailable);
                }
            }
        }
        r
    }

    /// Every token, oldest first.
    pub fn list(&mut self) -> Result<Vec<TokenRow>> {
        let q = format!("SELECT {COLS} FROM agent_tokens ORDER BY issued_at, id");
        Ok(self
            .call(|c| c.query(&q, &[]))?
            .into_iter()
            .map(row)
            .collect())
    }

    pub fn get(&mut self, id: &str) -> Result<Option<TokenRow>> {
        let q = format!("SELECT {COLS} FROM agent_tokens WHERE id = $1");
        Ok(self.call(|c| c.query(&q, &[Some(id)]))?.pop().map(row))
    }

    /// Issue a new token, for `host` or unbound; returns it with its
    /// secret (stored: only its hash). `host` and `note` are checked
    /// (`check_host`, `check_note`) by the caller.
    pub fn issue(&mut self, host: Option<&str>, note: Option<&str>) -> Result<Issued> {
        let secret = super::tokens::new_secret()?;
        let id = super::tokens::token_id(&secret);
        let hash = super::tokens::token_hash(&secret);
        let now = speediso_proto::events::rfc3339_now();
        self.call(|c| {
            c.exec(
                sql::INSERT,
                &[Some(&id), Some(&hash), host, note, Some(&now)],
            )
        })
        .context("storing the new token")?;
        if host.is_some() {
            // Bound when issued.
            let q = "UPDATE agent_tokens SET bound_at = issued_at WHERE id = $1";
            self.call(|c| c.exec(q, &[Some(&id)]))?;
        }
        let row = self.get(&id)?.context("the token just stored is missing")?;
        Ok(Issued { row, secret })
    }

    /// Revoke an issued token: `Ok(None)` when there is no such token; a
    /// token already revoked stays revoked (its row as it is).
    pub fn revoke(&mut self, id: &str) -> Result<Option<TokenRow>> {
        let Some(r) = self.get(id)? else {
            return Ok(None);
        };
        if r.source == "file" {
            bail!(
                "token {id} is a host=first-use line of the tokens file: remove the line and \
                 reload (SIGHUP) to revoke it"
            );
        }
        let now = speediso_proto::events::rfc3339_now();
        self.call(|c| c.exec(sql::REVOKE, &[Some(&now), Some(id)]))?;
        self.get(id)
    }

    /// Make sure each `(id, hash)` of the tokens file's first-use lines
    /// has its row (unbound when new; a binding stays).
    pub fn register_file(&mut self, tokens: &[(String, String)]) -> Result<()> {
        let now = speediso_proto::events::rfc3339_now();
        let rows: Vec<Vec<Option<&str>>> = tokens
            .iter()
            .map(|(id, hash)| vec![Some(id.as_str()), Some(hash.as_str()), Some(now.as_str())])
            .collect();
        self.call(|c| c.exec_many(sql::REGISTER_FILE, &rows))
    }

    /// Bind token `id` to `host` unless it is bound already (one UPDATE
    /// ... WHERE host IS NULL: of two racing, one wins); returns whom it
    /// is bound to now. `file_hash`: a first-use line of the tokens file
    /// (its row is made when missing).
    pub fn bind(&mut self, id: &str, host: &str, file_hash: Option<&str>) -> Result<Bound> {
        let now = speediso_proto::events::rfc3339_now();
        if let Some(h) = file_hash {
            self.call(|c| c.exec(sql::REGISTER_FILE, &[Some(id), Some(h), Some(&now)]))?;
        }
        let won = self.call(|c| c.exec(sql::BIND, &[Some(host), Some(&now), Some(id)]))?;
        let r = self.get(id)?;
        Ok(match r {
            Some(r) if r.revoked_at.is_none() => match r.host {
                Some(h) => {
                    if won > 0 {
                        tracing::info!("token {id} bound to host {h} by its first batch");
                    }
                    Bound::Host(h)
                }
                None => bail!("token {id}: still unbound after binding it"),
            },
            _ => Bound::Gone,
        })
    }

    /// Write the last-use times kept in memory (`(id, RFC 3339)`).
    pub fn touch(&mut self, used: &[(String, String)]) -> Result<()> {
        let rows: Vec<Vec<Option<&str>>> = used
            .iter()
            .map(|(id, ts)| vec![Some(ts.as_str()), Some(id.as_str())])
            .collect();
        self.call(|c| c.exec_many(sql::TOUCH, &rows))
    }

    /// What `Auth` looks tokens up in.
    pub fn cache(&mut self) -> Result<DbTokens> {
        let q = format!("SELECT hash, {COLS} FROM agent_tokens");
        let mut t = DbTokens::default();
        for mut r in self.call(|c| c.query(&q, &[]))? {
            let hash = r.remove(0).unwrap_or_default();
            let r = row(r);
            if r.revoked_at.is_some() {
                continue;
            }
            t.known.insert(r.id.clone());
            match r.source.as_str() {
                "issued" => {
                    t.issued.insert(hash, (r.id, r.host));
                }
                _ => {
                    if let Some(h) = r.host {
                        t.file_bindings.insert(r.id, h);
                    }
                }
            }
        }
        Ok(t)
    }
}

/// The database's tokens as `Auth` keeps them in memory.
#[derive(Debug, Clone, Default)]
pub struct DbTokens {
    /// Issued, not revoked: full SHA-256 hex of the secret → (id, host).
    pub issued: HashMap<String, (String, Option<String>)>,
    /// The tokens file's first-use tokens that are bound: id → host.
    pub file_bindings: HashMap<String, String>,
    /// Every id above and the unbound file tokens (whose last use to keep).
    pub known: HashSet<String>,
}

/// `--host` / `"host"`: what an event's serial, UUID or boot MAC would
/// say: 1-128 characters, no space or control character, not the word
/// `first-use` (the tokens file's marker).
pub fn check_host(key: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("{key} {v:?}: use the host's serial, system UUID or boot MAC (1-128 characters, no spaces)");
    }
    if v.eq_ignore_ascii_case(super::tokens::FIRST_USE) {
        bail!("{key} {v:?}: leave the host out for a token that binds on first use");
    }
    Ok(())
}

/// `--note` / `"note"`: at most 200 characters, no control characters.
pub fn check_note(key: &str, v: &str) -> Result<()> {
    if v.chars().count() > 200 || v.chars().any(char::is_control) {
        bail!(
            "{key} {:?}: at most 200 characters, no control characters",
            v.chars().take(40).collect::<String>()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_bind_revoke_on_sqlite() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = tmp.path().join("c.db");
        let mut db = TokenDb::open(spec.to_str().unwrap()).unwrap();
        let a = db.issue(Some("S1"), Some("rack 4")).unwrap();
        assert_eq!(a.secret.len(), 64);
        assert_eq!(a.row.id, crate::tokens::token_id(&a.secret));
        assert_eq!(a.row.host.as_deref(), Some("S1"));
        assert_eq!(a.row.bound_at.as_deref(), Some(a.row.issued_at.as_str()));
        let u = db.issue(None, None).unwrap();
        assert_eq!(
            (u.row.host.as_deref(), u.row.bound_at.as_deref()),
            (None, None)
        );
        // The first bind wins; a later one learns the winner.
        assert_eq!(
            db.bind(&u.row.id, "S2", None).unwrap(),
            Bound::Host("S2".into())
        );
        assert_eq!(
            db.bind(&u.row.id, "S3", None).unwrap(),
            Bound::Host("S2".into())
        );
        // The cache: by full hash, never the secret.
        let c = db.cache().unwrap();
        let h = crate::tokens::token_hash(&u.secret);
        assert_eq!(c.issued[&h], (u.row.id.clone(), Some("S2".into())));
        assert_eq!(c.issued.len(), 2);
        // Revoked: out of the cache, binds nothing.
        let r = db.revoke(&a.row.id).unwrap().unwrap();
        assert!(r.revoked_at.is_some());
        assert_eq!(
            db.revoke(&a.row.id).unwrap().unwrap().revoked_at,
            r.revoked_at
        );
        assert_eq!(db.revoke("0000000000000000").unwrap(), None);
        assert_eq!(db.bind(&a.row.id, "S1", None).unwrap(), Bound::Gone);
        assert_eq!(db.cache().unwrap().issued.len(), 1);
        // A file token: registered unbound, bound once, never revoked here.
        let fid = crate::tokens::token_id("file-first-use");
        let fh = crate::tokens::token_hash("file-first-use");
        db.register_file(&[(fid.clone(), fh.clone())]).unwrap();
        assert!(db.cache().unwrap().known.contains(&fid));
        assert_eq!(
            db.bind(&fid, "S9", Some(&fh)).unwrap(),
            Bound::Host("S9".into())
        );
        db.register_file(&[(fid.clone(), fh)]).unwrap();
        assert_eq!(db.cache().unwrap().file_bindings[&fid], "S9");
        let e = db.revoke(&fid).unwrap_err().to_string();
        assert!(e.contains("tokens file"), "{e}");
        // Last use: only forward.
        db.touch(&[(u.row.id.clone(), "2026-12-07T10:00:00Z".into())])
            .unwrap();
        db.touch(&[(u.row.id.clone(), "2026-12-07T09:00:00Z".into())])
            .unwrap();
        let got = db.get(&u.row.id).unwrap().unwrap();
        assert_eq!(got.last_used.as_deref(), Some("2026-12-07T10:00:00Z"));
        // No secret anywhere in the table.
        let dump = format!("{:?}", db.list().unwrap());
        assert!(
            !dump.contains(&u.secret) && !dump.contains(&a.secret),
            "{dump}"
        );
    }

    #[test]
    fn host_and_note_checks_name_the_value() {
        assert!(check_host("--host", "CZ1234").is_ok());
        assert!(check_host("--host", "52:54:00:12:34:56").is_ok());
        for bad in ["", "a b", "first-use", &"x".repeat(129)] {
            let e = check_host("--host", bad).unwrap_err().to_string();
            assert!(e.starts_with("--host \""), "{e}");
        }
        assert!(check_note("--note", "rack 4, row B").is_ok());
        assert!(check_note("--note", "a\nb").is_err());
    }
}
