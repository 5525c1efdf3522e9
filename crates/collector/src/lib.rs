//! The collector: the receiving end of the report endpoint. It
//! authenticates agents, stores every event once per `(run_id, seq)` in
//! SQLite, and serves hosts, runs, results and certificates as JSON and as
//! web pages. `src/bin/speediso-collector.rs` only calls `main`.
//!
//! Built only with the `collector` cargo feature, so the static agent
//! carries none of its dependencies.

pub mod auth;
pub mod cert;
pub mod ingest;
pub mod load;
pub mod pdf;
pub mod pg;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod tls;
pub mod tokendb;
pub mod tokens;
pub mod web;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// speediso-collector: receives speediso agents' events and shows them.
#[derive(Debug, Parser)]
#[command(name = "speediso-collector", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and web pages until SIGTERM/SIGINT.
    ///
    /// Tokens file: one token per line, or `host=<serial|uuid|mac> TOKEN`
    /// for a token only that host may use (its events are filed under that
    /// identity), or `host=first-use TOKEN` for one bound to the first host
    /// that posts with it (the binding is kept in --db), or
    /// `role=viewer|admin TOKEN` for an API client that reads (viewer) or
    /// also administers (admin); `#` starts a comment. Agent tokens post
    /// events and read nothing. Per-host agent tokens can also be issued
    /// without editing the file: see `speediso-collector token --help`.
    ///
    /// Users file (--users): `name viewer|admin <argon2id hash>` per line,
    /// from `speediso-collector hash-password`; they log in at /login.
    ///
    /// SIGHUP re-reads the tokens and users files and the TLS pair (a file
    /// that does not load is reported and the old one kept) and the agent
    /// tokens in --db (also re-read every 5 s).
    Serve {
        /// Address to listen on (port 0 picks a free one; the chosen
        /// address is printed on stdout).
        #[arg(long, default_value = "127.0.0.1:8470")]
        listen: String,
        /// The store: a SQLite file (created and migrated when needed), or
        /// a postgres://user@host/dbname URL (migrated when needed; add
        /// ?sslmode=verify-full&sslrootcert=CA.pem for verified TLS).
        #[arg(long, default_value = "speediso-collector.db")]
        db: String,
        /// Tokens file (agent tokens, role=viewer|admin API tokens).
        #[arg(long)]
        tokens: PathBuf,
        /// Users file for the web login: `name role hash` per line.
        #[arg(long)]
        users: Option<PathBuf>,
        /// PEM certificate chain to serve HTTPS with (needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP on a non-loopback --listen address (only behind
        /// a proxy that terminates TLS). Without TLS and without this, the
        /// collector refuses to start on anything but loopback.
        #[arg(long)]
        insecure_plain_http: bool,
        /// Largest request body accepted, in bytes (larger: 413).
        #[arg(long, default_value_t = 16 << 20)]
        max_body: usize,
        /// Longest NDJSON line accepted, in bytes (longer: 413).
        #[arg(long, default_value_t = 1 << 20)]
        max_line: usize,
        /// Public keys whose wipe certificates are trusted: one
        /// `<64 hex> [name]` per line, `#` comments. Without it every
        /// certificate, however valid its signature, shows as untrusted.
        #[arg(long)]
        trusted_signers: Option<PathBuf>,
        /// Requests served at once; more are answered 503 with
        /// Retry-After (agents retry, their events stay spooled).
        #[arg(long, default_value_t = 256)]
        max_in_flight: usize,
    },
    /// Issue, list and revoke per-host agent tokens kept in the database.
    ///
    /// An issued token posts events only for its host (`--host`: the
    /// serial, system UUID or boot MAC its events carry) or, issued without
    /// `--host`, for the first host that posts with it (its serial, else
    /// UUID, else boot MAC), and reads nothing. Put it in the host's Foreman
    /// parameter `speediso_token`. Only a hash of it is stored; `issue`
    /// prints the secret once. A running collector sees what this does
    /// within 5 s (at once on SIGHUP); POST/GET/DELETE /v1/admin/tokens do
    /// the same over the API.
    ///
    /// Example: `speediso-collector token issue --host CZ1234 --note "rack
    /// 4" --db /var/lib/speediso/collector.db`
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Print a users-file line: reads the password (one line) from stdin.
    ///
    /// Example: `speediso-collector hash-password --user ops --role admin
    /// >> /etc/speediso/collector-users` then type the password, or pipe it.
    HashPassword {
        /// The user name (A-Z a-z 0-9 . _ @ -).
        #[arg(long)]
        user: String,
        /// viewer (reads everything) or admin (also /v1/admin/*).
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Load generator for benchmarks and the scale test: N simulated
    /// agents (one connection each, loopback only) send M events each at
    /// once, resend some acknowledged batches, and with --check-db the
    /// store is checked: every event stored exactly once. Prints JSON with
    /// events/s and `"pass"`, then PASS or FAIL; exits 1 on FAIL.
    #[command(hide = true)]
    Load {
        /// The collector (http://127.0.0.1:PORT; loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8470")]
        url: String,
        /// One token for every agent.
        #[arg(long, conflicts_with = "host_tokens")]
        token: Option<String>,
        /// Tokens file with a `host=LOADnnnnn SECRET` line per agent: each
        /// agent uses its own host's token.
        #[arg(long)]
        host_tokens: Option<PathBuf>,
        /// Write such a tokens file (random secrets) for --agents and exit.
        #[arg(long)]
        write_host_tokens: Option<PathBuf>,
        #[arg(long, default_value_t = 50)]
        agents: usize,
        /// Events per agent (one run each).
        #[arg(long, default_value_t = 2000)]
        events: usize,
        /// Events per POST.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Acknowledged batches each agent sends again.
        #[arg(long, default_value_t = 0)]
        resend: usize,
        /// The collector's --db (SQLite file or postgres:// URL): check
        /// that each run holds its events exactly once.
        #[arg(long)]
        check_db: Option<String>,
        /// Give up (FAIL) after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Issue a new agent token; prints its secret (alone on stdout, or
    /// `{"id","secret",...}` with --json), which is never shown again.
    Issue {
        /// The host's serial, system UUID or boot MAC, as its events carry
        /// it. Without it, the token binds to the first host that posts.
        #[arg(long)]
        host: Option<String>,
        /// A note for `token list` (rack, ticket; at most 200 characters).
        #[arg(long)]
        note: Option<String>,
        /// The collector's store (its serve --db): SQLite file or
        /// postgres:// URL; migrated when needed.
        #[arg(long, default_value = "speediso-collector.db")]
        db: String,
        /// Print `{"id","secret","host","note","issued_at",...}` instead.
        #[arg(long)]
        json: bool,
    },
    /// List the database's agent tokens: id, host (or unbound), when
    /// issued, bound, last used (up to 5 s behind) and revoked, note.
    /// Never a secret.
    List {
        /// The collector's store (its serve --db).
        #[arg(long, default_value = "speediso-collector.db")]
        db: String,
        /// JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an issued token by its id (from `token list`): its next
    /// request is refused (401) once the collector refreshed (5 s, or
    /// SIGHUP; DELETE /v1/admin/tokens/ID: at once).
    Revoke {
        /// The token's id (16 hex digits), as `token list` shows it.
        id: String,
        /// The collector's store (its serve --db).
        #[arg(long, default_value = "speediso-collector.db")]
        db: String,
        /// JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A SQLite `--db` that does not exist (a typo) is an error for `token
/// list` and `revoke`, not a new empty database.
fn existing_db(db: &str) -> Result<()> {
    let pg = db.starts_with("postgres://") || db.starts_with("postgresql://");
    if !pg && !std::path::Path::new(db).exists() {
        anyhow::bail!("--db {db}: no such database file (the collector's serve --db)");
    }
    Ok(())
}

/// `speediso-collector token ...`.
fn token_command(action: TokenAction) -> Result<i32> {
    use tokendb::{check_host, check_note, TokenDb};
    match action {
        TokenAction::Issue {
            host,
            note,
            db,
            json,
        } => {
            if let Some(h) = &host {
                check_host("--host", h)?;
            }
            if let Some(n) = &note {
                check_note("--note", n)?;
            }
            let t = TokenDb::open(&db)?.issue(host.as_deref(), note.as_deref())?;
            if json {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                // The secret alone on stdout (for `$(...)`), the rest for people.
                println!("{}", t.secret);
                eprintln!(
                    "token {} issued for {}; give it to the host (Foreman parameter                      speediso_token): this secret is not shown again",
                    t.row.id,
                    match &t.row.host {
                        Some(h) => format!("host {h}"),
                        None => "the first host that posts with it (unbound)".into(),
                    }
                );
            }
            Ok(0)
        }
        TokenAction::List { db, json } => {
            existing_db(&db)?;
            let rows = TokenDb::open(&db)?.list()?;
            if json {
                println!("{}", serde_json::to_string(&rows)?);
                return Ok(0);
            }
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let table: Vec<[String; 8]> = rows
                .iter()
                .map(|r| {
                    [
                        r.id.clone(),
                        r.source.clone(),
                        r.host.clone().unwrap_or_else(|| "unbound".into()),
                        r.issued_at.clone(),
                        dash(&r.bound_at),
                        dash(&r.last_used),
                        dash(&r.revoked_at),
                        dash(&r.note),
                    ]
                })
                .collect();
            let head = [
                "ID",
                "SOURCE",
                "HOST",
                "ISSUED",
                "BOUND",
                "LAST USED",
                "REVOKED",
                "NOTE",
            ];
            let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
            for r in &table {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let s: Vec<String> = cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<0$}", w[i]))
                    .collect();
                println!("{}", s.join("  ").trim_end());
            };
            line(head.to_vec());
            for r in &table {
                line(r.iter().map(String::as_str).collect());
            }
            if table.is_empty() {
                eprintln!("no agent tokens in {db} (speediso-collector token issue)");
            }
            Ok(0)
        }
        TokenAction::Revoke { id, db, json } => {
            existing_db(&db)?;
            let mut d = TokenDb::open(&db)?;
            let before = d.get(&id)?;
            let Some(r) = d.revoke(&id)? else {
                anyhow::bail!("no token {id:?} in {db} (see speediso-collector token list)");
            };
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else if before.is_some_and(|b| b.revoked_at.is_some()) {
                println!(
                    "token {id} was already revoked at {}",
                    r.revoked_at.as_deref().unwrap_or("?")
                );
            } else {
                println!(
                    "token {id} revoked; a running collector refuses it within 5 s (at once after SIGHUP)"
                );
            }
            Ok(0)
        }
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Serve {
            listen,
            db,
            tokens,
            users,
            tls_cert,
            tls_key,
            insecure_plain_http,
            max_body,
            max_line,
            trusted_signers,
            max_in_flight,
        } => {
            server::serve(server::ServeArgs {
                listen,
                db,
                tokens,
                users,
                tls: tls_cert.zip(tls_key),
                insecure_plain_http,
                limits: ingest::Limits { max_body, max_line },
                trusted_signers,
                max_in_flight,
            })?;
            Ok(0)
        }
        Command::Token { action } => token_command(action),
        Command::HashPassword { user, role } => {
            let line = auth::hash_password_line(&user, &role, &mut std::io::stdin().lock())?;
            println!("{line}");
            Ok(0)
        }
        Command::Load {
            url,
            token,
            host_tokens,
            write_host_tokens,
            agents,
            events,
            batch,
            resend,
            check_db,
            timeout_s,
        } => {
            if let Some(p) = write_host_tokens {
                load::write_host_tokens(&p, agents)?;
                return Ok(0);
            }
            let r = load::run(&load::LoadArgs {
                url,
                token,
                host_tokens,
                agents,
                events,
                batch,
                resend,
                check_db,
                timeout: std::time::Duration::from_secs(timeout_s),
            })?;
            println!("{}", serde_json::to_string(&r)?);
            if r.pass {
                println!("PASS");
                Ok(0)
            } else {
                println!("FAIL: {}", r.check.as_deref().unwrap_or(""));
                Ok(1)
            }
        }
    }
}
