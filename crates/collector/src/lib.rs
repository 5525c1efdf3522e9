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
    /// identity), or `role=viewer|admin TOKEN` for an API client that
    /// reads (viewer) or also administers (admin); `#` starts a comment.
    /// Agent tokens post events and read nothing.
    ///
    /// Users file (--users): `name viewer|admin <argon2id hash>` per line,
    /// from `speediso-collector hash-password`; they log in at /login.
    ///
    /// SIGHUP re-reads the tokens and users files and the TLS pair; a file
    /// that does not load is reported and the old one kept.
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
