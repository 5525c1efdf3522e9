//! `speediso-repo`: build delivery on the central repository server.
//! Numbered builds are copied in crash-safely, the unversioned names at the
//! root switch to a new build (or back) in one rename(2), and old builds are
//! pruned. It runs on the repository server, never inside the image.
//!
//! Layout under the repository root (all links relative, so the tree can be
//! moved or served from another mount point):
//!
//! ```text
//! builds/<job>/<N>/<file>            a complete build, immutable once renamed into place
//! builds/<job>/<N>/manifest.json     name, size and SHA-256 of every file of build N
//! builds/<job>/current -> <N>        THE live pointer: one rename switches every name
//! <file> -> builds/<job>/current/<file>        the unversioned names clients fetch
//! .live/<file> -> ../builds/<job>/current      for nginx: $realpath_root gives builds/<job>/<N>
//! .speediso-repo.lock                flock held by publish and rollback
//! ```
//!
//! Why a `current` link instead of pointing each root name at a numbered
//! file: one rename switches vmlinuz, initrd, the squashfs and the ISO
//! together, so a client never sees a kernel of one build next to the
//! initramfs of another, and a crash cannot leave half the names switched.

pub mod cli;
pub mod fsops;

use anyhow::{bail, Context, Result};
use fsops::{crash_point, set_symlink, sync_dir};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Directory holding the builds of every job.
pub const BUILDS: &str = "builds";
/// Directory of per-name links to the live build directory (for nginx).
pub const LIVE_DIR: &str = ".live";
/// The live-build link inside `builds/<job>/`.
pub const CURRENT: &str = "current";
/// The manifest inside each build directory.
pub const MANIFEST: &str = "manifest.json";
/// Default number of builds kept per job.
pub const DEFAULT_KEEP: usize = 3;

/// What a build contains, written last into the build directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Format version.
    pub v: u32,
    pub job: String,
    pub build: u64,
    /// When it was published, seconds since the Unix epoch.
    pub published_unix: u64,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl Manifest {
    fn same_content(&self, other: &Manifest) -> bool {
        let key = |m: &Manifest| {
            let mut v: Vec<_> = m
                .files
                .iter()
                .map(|f| (f.name.clone(), f.size, f.sha256.clone()))
                .collect();
            v.sort();
            v
        };
        key(self) == key(other)
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.files.iter().map(|f| f.name.clone()).collect()
    }
}

/// A job name: it becomes a directory name and part of every URL.
pub fn validate_job(job: &str) -> Result<()> {
    if valid_name(job, 64, b"._-") {
        Ok(())
    } else {
        bail!("job name {job:?} is not valid: use 1-64 of A-Z a-z 0-9 . _ - , not starting with . or -")
    }
}

/// A file name: it becomes an unversioned name at the repository root.
pub fn validate_file_name(name: &str) -> Result<()> {
    if !valid_name(name, 128, b"._+-") {
        bail!("file name {name:?} is not valid: use 1-128 of A-Z a-z 0-9 . _ + - , not starting with . or -");
    }
    if name == BUILDS || name == MANIFEST || name == CURRENT {
        bail!("file name {name:?} is reserved by the repository layout; rename the file");
    }
    Ok(())
}

fn valid_name(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with('.')
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn job_dir(root: &Path, job: &str) -> PathBuf {
    root.join(BUILDS).join(job)
}

/// Target of the root link `name` of `job`.
fn root_link_target(job: &str, name: &str) -> String {
    format!("{BUILDS}/{job}/{CURRENT}/{name}")
}

/// Target of the `.live/<name>` link of `job`.
fn live_link_target(job: &str) -> String {
    format!("../{BUILDS}/{job}/{CURRENT}")
}

/// If a root entry is a link made by publish, which job owns it.
fn root_link_job(root: &Path, name: &str) -> Option<String> {
    let target = fs::read_link(root.join(name)).ok()?;
    let t = target.to_str()?;
    let rest = t.strip_prefix(&format!("{BUILDS}/"))?;
    let (job, tail) = rest.split_once('/')?;
    (tail == format!("{CURRENT}/{name}")).then(|| job.to_string())
}

/// The build `builds/<job>/current` points at, if any.
pub fn live_build(root: &Path, job: &str) -> Result<Option<u64>> {
    let link = job_dir(root, job).join(CURRENT);
    match fs::read_link(&link) {
        Ok(t) => {
            let s = t.to_string_lossy();
            let n = s.parse::<u64>().with_context(|| {
                format!("{} points at {s:?}, not a build number", link.display())
            })?;
            Ok(Some(n))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading link {}", link.display())),
    }
}

/// Numbered build directories of a job, ascending.
pub fn builds_of(root: &Path, job: &str) -> Result<Vec<u64>> {
    let dir = job_dir(root, job);
    let mut v = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Ok(n) = name.parse::<u64>() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                v.push(n);
            }
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Jobs present under `builds/`, sorted.
pub fn jobs(root: &Path) -> Result<Vec<String>> {
    let dir = root.join(BUILDS);
    let mut v = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(name) = e.file_name().to_str() {
            if !name.starts_with('.') && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                v.push(name.to_string());
            }
        }
    }
    v.sort();
    Ok(v)
}

pub fn read_manifest(root: &Path, job: &str, build: u64) -> Result<Manifest> {
    let path = job_dir(root, job).join(build.to_string()).join(MANIFEST);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let m: Manifest =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if m.job != job || m.build != build {
        bail!(
            "{} says job {:?} build {}, but it lies in builds/{job}/{build}",
            path.display(),
            m.job,
            m.build
        );
    }
    Ok(m)
}

/// Remove what an interrupted publish or rollback left behind: hidden
/// staging, trash and temp-link entries. Only called under the lock.
fn clean_leftovers(root: &Path, job: &str) -> Result<()> {
    for dir in [root.to_path_buf(), root.join(LIVE_DIR), job_dir(root, job)] {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.starts_with(".stage.")
                || name.starts_with(".trash.")
                || (name.starts_with('.') && name.contains(".tmp."));
            if !ours {
                continue;
            }
            let path = e.path();
            tracing::info!("removing leftover {}", path.display());
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let r = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            r.with_context(|| format!("removing leftover {}", path.display()))?;
        }
    }
    Ok(())
}

/// Make sure the directories of the layout exist (and are durable).
fn ensure_layout(root: &Path, job: &str) -> Result<()> {
    let meta = fs::metadata(root)
        .with_context(|| format!("repository root {} (create it first)", root.display()))?;
    if !meta.is_dir() {
        bail!("repository root {} is not a directory", root.display());
    }
    for (parent, dir) in [
        (root.to_path_buf(), root.join(BUILDS)),
        (root.join(BUILDS), job_dir(root, job)),
        (root.to_path_buf(), root.join(LIVE_DIR)),
    ] {
        if !dir.is_dir() {
            fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            sync_dir(&parent)?;
        }
    }
    Ok(())
}

/// Options of a publish.
#[derive(Debug, Clone)]
pub struct PublishOpts {
    pub root: PathBuf,
    pub job: String,
    pub build: u64,
    pub files: Vec<PathBuf>,
    pub keep: usize,
    pub lock_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub job: String,
    pub build: u64,
    /// The build that was live before, if any.
    pub previous: Option<u64>,
    /// The build was already there with the same content (a rerun after an
    /// interrupted publish): nothing was copied.
    pub reused: bool,
    pub pruned: Vec<u64>,
    pub kept: Vec<u64>,
    pub manifest: Manifest,
}

/// Copy a build in, switch the links to it, prune old builds.
pub fn publish(o: &PublishOpts) -> Result<PublishReport> {
    validate_job(&o.job)?;
    if o.build == 0 {
        bail!("--build must be a positive build number");
    }
    if o.keep == 0 {
        bail!("--keep must be at least 1 (the live build is always kept)");
    }
    if o.files.is_empty() {
        bail!("no files to publish");
    }
    let mut names = BTreeSet::new();
    let mut inputs = Vec::new();
    for f in &o.files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable file name", f.display()))?
            .to_string();
        validate_file_name(&name)?;
        let meta = fs::metadata(f).with_context(|| format!("input file {}", f.display()))?;
        if !meta.is_file() {
            bail!("input {} is not a regular file", f.display());
        }
        if !names.insert(name.clone()) {
            bail!("two input files are named {name:?}; every file needs its own name at the root");
        }
        inputs.push((f.clone(), name));
    }

    ensure_layout(&o.root, &o.job)?;
    let _lock = fsops::RepoLock::acquire(&o.root, o.lock_timeout)?;
    clean_leftovers(&o.root, &o.job)?;
    // Refuse before copying anything when a name belongs to someone else.
    check_names_free(&o.root, &o.job, &names)?;

    let jdir = job_dir(&o.root, &o.job);
    let final_dir = jdir.join(o.build.to_string());
    let (manifest, reused) = if final_dir.exists() {
        let existing = read_manifest(&o.root, &o.job, o.build).with_context(|| {
            format!(
                "build {} of job {} exists but is unreadable; build numbers are never reused",
                o.build, o.job
            )
        })?;
        let mut files = Vec::new();
        for (src, name) in &inputs {
            let (size, sha256) = fsops::sha256_file(src)?;
            files.push(FileEntry {
                name: name.clone(),
                size,
                sha256,
            });
        }
        let wanted = Manifest {
            files,
            ..existing.clone()
        };
        if !wanted.same_content(&existing) {
            bail!(
                "build {} of job {} already exists with different content; build numbers are never reused, publish under a new number",
                o.build,
                o.job
            );
        }
        check_build_files(&o.root, &existing)?;
        (existing, true)
    } else {
        (stage_build(o, &inputs)?, false)
    };

    let previous = live_build(&o.root, &o.job)?;
    switch_to(&o.root, &o.job, &manifest)?;
    let mut protect = BTreeSet::from([o.build]);
    protect.extend(previous);
    let (pruned, kept) = prune(&o.root, &o.job, o.keep, &protect)?;
    Ok(PublishReport {
        job: o.job.clone(),
        build: o.build,
        previous,
        reused,
        pruned,
        kept,
        manifest,
    })
}

/// Copy the inputs into a hidden staging directory, write the manifest,
/// then rename the whole directory to its number: a build directory with
/// a number is always complete.
fn stage_build(o: &PublishOpts, inputs: &[(PathBuf, String)]) -> Result<Manifest> {
    let jdir = job_dir(&o.root, &o.job);
    let stage = jdir.join(format!(".stage.{}.{}", o.build, std::process::id()));
    fs::create_dir(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let mut files = Vec::new();
    for (i, (src, name)) in inputs.iter().enumerate() {
        let (size, sha256) = fsops::copy_atomic(src, &stage, name, i == 0)?;
        tracing::info!("copied {} ({size} bytes, sha256 {sha256})", src.display());
        files.push(FileEntry {
            name: name.clone(),
            size,
            sha256,
        });
    }
    crash_point("staged");
    let manifest = Manifest {
        v: 1,
        job: o.job.clone(),
        build: o.build,
        published_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        files,
    };
    let mut text = serde_json::to_string_pretty(&manifest)?;
    text.push('\n');
    fsops::write_atomic(&stage, MANIFEST, text.as_bytes())?;
    sync_dir(&stage)?;
    crash_point("manifest");
    let final_dir = jdir.join(o.build.to_string());
    fs::rename(&stage, &final_dir)
        .with_context(|| format!("renaming {} to {}", stage.display(), final_dir.display()))?;
    sync_dir(&jdir)?;
    crash_point("build-dir");
    Ok(manifest)
}

/// Every unversioned name must be absent or already a link of this job.
fn check_names_free(root: &Path, job: &str, names: &BTreeSet<String>) -> Result<()> {
    for name in names {
        let path = root.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
        };
        match root_link_job(root, name) {
            Some(j) if j == job => {}
            Some(j) => bail!(
                "{} is the unversioned name of job {j:?}; two jobs cannot share a name at the root",
                path.display()
            ),
            None => {
                let what = if meta.file_type().is_symlink() {
                    format!(
                        "a link to {:?} not made by speediso-repo",
                        fs::read_link(&path).unwrap_or_default()
                    )
                } else if meta.is_dir() {
                    "a directory".to_string()
                } else {
                    "a regular file".to_string()
                };
                bail!(
                    "{} is {what}; move it away so publish can own the name",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// Quick check that a build is complete before making it live: every
/// manifest file present with its size (full checksums are `verify`'s job,
/// so that rollback stays instant).
fn check_build_files(root: &Path, m: &Manifest) -> Result<()> {
    let dir = job_dir(root, &m.job).join(m.build.to_string());
    for f in &m.files {
        let path = dir.join(&f.name);
        let meta = fs::metadata(&path)
            .with_context(|| format!("build {} of job {}: {}", m.build, m.job, path.display()))?;
        if meta.len() != f.size {
            bail!(
                "build {} of job {}: {} has {} bytes, the manifest says {}",
                m.build,
                m.job,
                path.display(),
                meta.len(),
                f.size
            );
        }
    }
    Ok(())
}

/// Make build `m.build` the live one. Order matters for crash safety:
/// 1. drop root links for names the target build lacks (they would dangle
///    after the switch); a name going away disappears slightly early;
/// 2. rename a new `current` over the old: every name switches at once;
/// 3. add links for names new in this build (absent until now, never
///    dangling).
fn switch_to(root: &Path, job: &str, m: &Manifest) -> Result<()> {
    let wanted = m.names();
    check_names_free(root, job, &wanted)?;
    let live_dir = root.join(LIVE_DIR);
    let owned: BTreeSet<String> = fs::read_dir(root)
        .with_context(|| format!("listing {}", root.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.') && root_link_job(root, n).as_deref() == Some(job))
        .collect();
    let dropped: Vec<_> = owned.difference(&wanted).collect();
    for name in &dropped {
        fsops::remove_if_present(&root.join(name))?;
        fsops::remove_if_present(&live_dir.join(name))?;
    }
    if !dropped.is_empty() {
        sync_dir(root)?;
        sync_dir(&live_dir)?;
    }

    let jdir = job_dir(root, job);
    if set_symlink(&jdir, CURRENT, &m.build.to_string(), Some("switch"))? {
        sync_dir(&jdir)?;
        crash_point("switched");
    }

    let mut changed = false;
    for name in &wanted {
        changed |= set_symlink(&live_dir, name, &live_link_target(job), None)?;
        changed |= set_symlink(root, name, &root_link_target(job, name), None)?;
    }
    if changed {
        sync_dir(&live_dir)?;
        sync_dir(root)?;
    }
    crash_point("linked");
    Ok(())
}

/// Remove builds beyond the newest `keep`, never one in `protect` (the
/// live build and the one live just before, which a reader may still be
/// resolving and which is the natural rollback target). Each build is
/// first renamed to a hidden trash name, so it vanishes in one step.
fn prune(
    root: &Path,
    job: &str,
    keep: usize,
    protect: &BTreeSet<u64>,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let builds = builds_of(root, job)?;
    let newest: BTreeSet<u64> = builds.iter().rev().take(keep).copied().collect();
    let jdir = job_dir(root, job);
    let mut pruned = Vec::new();
    let mut trash = Vec::new();
    for b in &builds {
        if newest.contains(b) || protect.contains(b) {
            continue;
        }
        let from = jdir.join(b.to_string());
        let to = jdir.join(format!(".trash.{b}.{}", std::process::id()));
        fs::rename(&from, &to).with_context(|| format!("moving {} aside", from.display()))?;
        if trash.is_empty() {
            crash_point("prune");
        }
        trash.push(to);
        pruned.push(*b);
    }
    if !trash.is_empty() {
        sync_dir(&jdir)?;
    }
    for t in trash {
        fs::remove_dir_all(&t).with_context(|| format!("removing {}", t.display()))?;
    }
    let kept = builds.into_iter().filter(|b| !pruned.contains(b)).collect();
    Ok((pruned, kept))
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub job: String,
    pub from: u64,
    pub to: u64,
    pub changed: bool,
}

/// Point the links at the build before the live one, or at `to`.
pub fn rollback(
    root: &Path,
    job: &str,
    to: Option<u64>,
    lock_timeout: Duration,
) -> Result<RollbackReport> {
    validate_job(job)?;
    if !job_dir(root, job).is_dir() {
        let known = jobs(root).unwrap_or_default();
        bail!(
            "no job {job:?} under {}; jobs: {}",
            root.join(BUILDS).display(),
            list_or_none(&known)
        );
    }
    let _lock = fsops::RepoLock::acquire(root, lock_timeout)?;
    clean_leftovers(root, job)?;
    let live = live_build(root, job)?
        .with_context(|| format!("job {job} has no live build; publish one first"))?;
    let builds = builds_of(root, job)?;
    let kept = builds.iter().map(u64::to_string).collect::<Vec<_>>();
    let target = match to {
        Some(n) => {
            if !builds.contains(&n) {
                bail!(
                    "job {job} has no build {n}; builds kept: {}",
                    list_or_none(&kept)
                );
            }
            n
        }
        None => *builds.iter().rev().find(|b| **b < live).with_context(|| {
            format!(
                "job {job} has no build older than the live build {live}; builds kept: {}",
                list_or_none(&kept)
            )
        })?,
    };
    let m = read_manifest(root, job, target)?;
    check_build_files(root, &m)?;
    // Also run when target == live: it restores root links a crash during
    // a first publish may have left missing.
    switch_to(root, job, &m)?;
    Ok(RollbackReport {
        job: job.to_string(),
        from: live,
        to: target,
        changed: live != target,
    })
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    pub build: u64,
    pub live: bool,
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    pub job: String,
    pub live: Option<u64>,
    /// Unversioned names at the root that this job's links own.
    pub links: Vec<String>,
    pub builds: Vec<BuildInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    pub root: PathBuf,
    pub jobs: Vec<JobInfo>,
}

/// Builds per job, which one is live, their manifests.
pub fn list(root: &Path) -> Result<ListReport> {
    if !root.is_dir() {
        bail!("repository root {} is not a directory", root.display());
    }
    let root_names = root_names(root)?;
    let mut out = Vec::new();
    for job in jobs(root)? {
        let live = live_build(root, &job)?;
        let mut builds = Vec::new();
        for b in builds_of(root, &job)?.into_iter().rev() {
            let (manifest, error) = match read_manifest(root, &job, b) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            builds.push(BuildInfo {
                build: b,
                live: live == Some(b),
                manifest,
                error,
            });
        }
        let links = root_names
            .iter()
            .filter(|n| root_link_job(root, n).as_deref() == Some(job.as_str()))
            .cloned()
            .collect();
        out.push(JobInfo {
            job,
            live,
            links,
            builds,
        });
    }
    Ok(ListReport {
        root: root.to_path_buf(),
        jobs: out,
    })
}

fn root_names(root: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(root)
        .with_context(|| format!("listing {}", root.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    v.sort();
    Ok(v)
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// Files whose size and SHA-256 were checked against a manifest.
    pub files_checked: usize,
    pub errors: Vec<String>,
    /// Leftovers of an interrupted run and other things worth a look that
    /// do not break clients.
    pub warnings: Vec<String>,
}

/// Every link resolves, every manifest checksum matches.
pub fn verify(root: &Path) -> Result<VerifyReport> {
    if !root.is_dir() {
        bail!("repository root {} is not a directory", root.display());
    }
    let mut r = VerifyReport {
        ok: true,
        files_checked: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    // Links at the root and in .live: each must resolve.
    for (dir, want_dir) in [(root.to_path_buf(), false), (root.join(LIVE_DIR), true)] {
        let names = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect::<Vec<_>>(),
            Err(_) => continue,
        };
        for name in names {
            let path = dir.join(&name);
            let Ok(target) = fs::read_link(&path) else {
                continue;
            };
            if name.starts_with('.') && name.contains(".tmp.") {
                r.warnings.push(format!(
                    "{}: temp link left by an interrupted run (the next publish removes it)",
                    path.display()
                ));
                continue;
            }
            match fs::metadata(&path) {
                Ok(m) if m.is_dir() == want_dir => {}
                Ok(_) => r.errors.push(format!(
                    "{} -> {}: resolves to the wrong kind of file",
                    path.display(),
                    target.display()
                )),
                Err(e) => r.errors.push(format!(
                    "{} -> {}: does not resolve: {e}",
                    path.display(),
                    target.display()
                )),
            }
        }
    }
    for job in jobs(root)? {
        let jdir = job_dir(root, &job);
        for e in fs::read_dir(&jdir)
            .with_context(|| format!("listing {}", jdir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                r.warnings.push(format!("{}: left by an interrupted run (the next publish or rollback of {job} removes it)", e.path().display()));
            } else if name != CURRENT && name.parse::<u64>().is_err() {
                r.warnings.push(format!(
                    "{}: not part of the repository layout",
                    e.path().display()
                ));
            }
        }
        let live = match live_build(root, &job) {
            Ok(l) => l,
            Err(e) => {
                r.errors.push(format!("{e:#}"));
                None
            }
        };
        let builds = builds_of(root, &job)?;
        if let Some(l) = live {
            if !builds.contains(&l) {
                r.errors.push(format!(
                    "{}: live build {l} does not exist",
                    jdir.join(CURRENT).display()
                ));
            }
        }
        for b in builds {
            let dir = jdir.join(b.to_string());
            // verify takes no lock (it may hash for minutes): a build that a
            // concurrent publish prunes meanwhile is skipped, not an error.
            let pruned_meanwhile = || !dir.exists();
            let m = match read_manifest(root, &job, b) {
                Ok(m) => m,
                Err(_) if pruned_meanwhile() => continue,
                Err(e) => {
                    r.errors.push(format!("{e:#}"));
                    continue;
                }
            };
            for f in &m.files {
                let path = dir.join(&f.name);
                match fsops::sha256_file(&path) {
                    Ok((size, sha)) => {
                        r.files_checked += 1;
                        if size != f.size {
                            r.errors.push(format!(
                                "{}: {size} bytes, manifest says {}",
                                path.display(),
                                f.size
                            ));
                        } else if sha != f.sha256 {
                            r.errors.push(format!(
                                "{}: sha256 {sha}, manifest says {}",
                                path.display(),
                                f.sha256
                            ));
                        }
                    }
                    Err(_) if pruned_meanwhile() => break,
                    Err(e) => r.errors.push(format!("{e:#}")),
                }
            }
            if live == Some(b) {
                for f in &m.files {
                    if root_link_job(root, &f.name).as_deref() != Some(job.as_str()) {
                        r.warnings.push(format!(
                            "{}: live file of job {job} has no root link (interrupted first publish?); run `speediso-repo rollback --job {job} --to {b}` to relink",
                            root.join(&f.name).display()
                        ));
                    }
                }
            }
        }
    }
    r.ok = r.errors.is_empty();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases = [
            ("speedtest", true, true),
            ("speedtest.squashfs", true, true),
            ("vmlinuz-6.1+deb", false, true), // '+' only in file names
            ("initrd", true, true),
            ("", false, false),
            (".hidden", false, false),
            ("-rf", false, false),
            ("a/b", false, false),
            ("..", false, false),
            ("sp ace", false, false),
            ("builds", true, false),
            ("manifest.json", true, false),
            ("current", true, false),
        ];
        for (name, job_ok, file_ok) in cases {
            assert_eq!(validate_job(name).is_ok(), job_ok, "job {name:?}");
            assert_eq!(validate_file_name(name).is_ok(), file_ok, "file {name:?}");
        }
        assert!(validate_job(&"j".repeat(64)).is_ok());
        assert!(validate_job(&"j".repeat(65)).is_err());
    }

    #[test]
    fn root_links_are_recognised_by_their_target() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let link =
            |name: &str, target: &str| std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        link("vmlinuz", "builds/speedtest/current/vmlinuz");
        link("initrd", "builds/speedtest/current/vmlinuz"); // name mismatch
        link("iso", "/srv/elsewhere/iso");
        link("x", "builds/speedtest/3/x"); // numbered, not ours
        std::fs::write(root.join("plain"), b"").unwrap();
        assert_eq!(root_link_job(root, "vmlinuz").as_deref(), Some("speedtest"));
        for n in ["initrd", "iso", "x", "plain", "absent"] {
            assert_eq!(root_link_job(root, n), None, "{n}");
        }
    }

    #[test]
    fn manifest_content_ignores_order_and_time() {
        let f = |n: &str, s: u64| FileEntry {
            name: n.into(),
            size: s,
            sha256: format!("{s:064x}"),
        };
        let a = Manifest {
            v: 1,
            job: "j".into(),
            build: 1,
            published_unix: 1,
            files: vec![f("a", 1), f("b", 2)],
        };
        let mut b = Manifest {
            published_unix: 99,
            files: vec![f("b", 2), f("a", 1)],
            ..a.clone()
        };
        assert!(a.same_content(&b));
        b.files[0].size = 3;
        assert!(!a.same_content(&b));
    }
}
