//! The `speediso` command line: one thin handler per subcommand over the
//! definitions in `args`. `main.rs` parses, sets up logging and calls `run`.

mod args;

pub use args::{BenchCmd, BurninCmd, Cli, Command, InstallArgs, SshKeysCmd, WipeArgs};

use crate::cmdline::{self, Cmdline};
use crate::events::{Bus, Sink};
use crate::plan::{self, Plan, Rejection, TaskSource};
use crate::root::Root;
use crate::run::exit;
use crate::sinks;
use crate::systemd::{SystemBus, Systemd};
use crate::tasks::{self, Catalog};
use crate::{dispatch, host};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which state file a run's events go to: the task's (`state.json`) or the
/// last ad-hoc command's (`adhoc.json`), so a command run by hand never
/// hides the task's state from `speediso status`.
#[derive(Debug, Clone, Copy)]
enum Record {
    Task,
    AdHoc,
}

/// Everything a handler needs from the global flags and environment.
struct Env {
    root: Root,
    cmdline: Cmdline,
    env_task: Option<String>,
    catalog: Catalog,
    run_dir: PathBuf,
}

impl Env {
    fn new(cli: &Cli) -> Result<Env> {
        let root = Root::new(&cli.root);
        let line = match &cli.cmdline {
            Some(s) => s.clone(),
            None => cmdline::read(&root)?,
        };
        let mut dirs = cli.tasks_dir.clone();
        if let Some(d) = std::env::var_os("SPEEDISO_TASKS_DIR") {
            dirs.insert(0, PathBuf::from(d));
        }
        let run_dir = cli
            .run_dir
            .clone()
            .or_else(|| std::env::var_os("SPEEDISO_RUN_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/run/speediso"));
        let cmdline = cmdline::parse(&line);
        // Secrets are known before anything is printed or sent.
        for p in &cmdline.params {
            if let Some(v) = &p.value {
                let key = p.key.strip_prefix("speediso.").unwrap_or(&p.key);
                crate::redact::register_option(key, v);
            }
        }
        Ok(Env {
            root,
            cmdline,
            env_task: std::env::var("SPEEDISO").ok(),
            catalog: Catalog::load(&tasks::default_dirs(&dirs)),
            run_dir,
        })
    }

    fn boot_task(&self) -> Option<(String, TaskSource)> {
        plan::boot_task(self.env_task.as_deref(), &self.cmdline)
    }

    /// The sinks for a run: console or JSON lines, journal and sd_notify
    /// under systemd, the state file. The report sink joins here.
    /// `state`: also record the run in the state file `speediso status`
    /// reads. Only boot-task runs do, so an ad-hoc benchmark or wipe never
    /// hides what the boot's task did.
    fn sinks(&self, json: bool, state: Record) -> Vec<Box<dyn Sink>> {
        let console: Box<dyn Sink> = if json {
            Box::new(sinks::jsonl::JsonLines(std::io::stdout()))
        } else {
            Box::new(sinks::console::Console::stdout())
        };
        self.sinks_with(console, state)
    }

    /// `console` plus the sinks every bus gets (journal, notify, the state
    /// file `state` names, report and Foreman when configured).
    fn sinks_with(&self, console: Box<dyn Sink>, state: Record) -> Vec<Box<dyn Sink>> {
        let mut v: Vec<Box<dyn Sink>> = vec![console];
        if let Some(j) = sinks::journal::Journal::under_systemd() {
            v.push(Box::new(j));
        }
        if let Some(n) = sinks::notify::Notify::from_env() {
            v.push(Box::new(n));
        }
        let file = match state {
            Record::Task => sinks::state::StateFile::new(&self.run_dir),
            Record::AdHoc => sinks::state::StateFile::adhoc(&self.run_dir),
        };
        if let Some(s) = file {
            v.push(Box::new(s));
        }
        // A bad report configuration rejects the plan (plan::build says
        // why); here it only means no report sink.
        if let Ok((opts, _)) = plan::check_options(&self.cmdline) {
            if let Ok(Some(cfg)) = crate::report::Config::from_options(&opts) {
                v.push(Box::new(sinks::report::Report::new(cfg, &self.run_dir)));
            }
            if let Ok(Some(cfg)) = crate::report::Config::foreman(&opts) {
                match cfg.agent() {
                    Ok(agent) => v.push(Box::new(sinks::foreman::Foreman::new(
                        &cfg.base,
                        agent,
                        sinks::foreman::POLICY,
                    ))),
                    Err(e) => crate::say!("speediso: foreman: {e:#}"),
                }
            }
        }
        v
    }

    /// The command line's `speediso.*` options for a command run by hand,
    /// warnings printed; `None` (the error printed) when one is invalid.
    fn checked_options(&self) -> Option<crate::options::Options> {
        match plan::check_options(&self.cmdline) {
            Ok((options, warnings)) => {
                for w in warnings {
                    crate::say!("speediso: warning: {w}");
                }
                Some(options)
            }
            Err(e) => {
                crate::say!("speediso: {e}");
                None
            }
        }
    }

    /// The bus of a task run or a dispatch: every sink.
    fn bus(&self, task: Option<String>, json: bool) -> Bus {
        Bus::new(
            task,
            host::identify(&self.root, &self.cmdline),
            self.sinks(json, Record::Task),
        )
    }

    /// The bus of an ad-hoc command (bench, wipe by hand): every sink, its
    /// state in the ad-hoc state file.
    fn adhoc_bus(&self, task: Option<String>, json: bool) -> Bus {
        Bus::new(
            task,
            host::identify(&self.root, &self.cmdline),
            self.sinks(json, Record::AdHoc),
        )
    }
}

/// Run the parsed command line; returns the exit status.
pub fn run(cli: Cli) -> Result<i32> {
    let env = Env::new(&cli)?;
    match cli.command {
        Command::Dispatch {
            dry_run,
            json,
            wait,
        } => cmd_dispatch(&env, dry_run, json, wait),
        Command::Run {
            task,
            json,
            confirm,
        } => cmd_run(&env, &task, json, confirm.as_deref()),
        Command::Tasks { json, options } => cmd_tasks(&env, json, options),
        Command::Status { json, events } => cmd_status(&env, json, events),
        Command::Bench { json, what } => cmd_bench(&env, json, &what),
        Command::Wipe(a) => cmd_wipe(&env, a),
        Command::VerifyCert { file, pubkey } => cmd_verify_cert(&file, &pubkey),
        Command::StreamBench {
            seconds,
            chunk,
            only,
            json,
        } => cmd_stream_bench(seconds, chunk, only.as_deref(), json),
        Command::Install(a) => cmd_install(&env, a),
        Command::Inventory {
            json,
            pci_ids,
            smart,
            lldp,
            lldp_wait,
            nic,
        } => {
            let lldp_wait = match (lldp, lldp_wait) {
                (_, Some(w)) => w,
                (false, None) => Duration::ZERO,
                (true, None) => {
                    let Some(options) = env.checked_options() else {
                        return Ok(exit::USAGE);
                    };
                    options
                        .get("lldp.wait")
                        .and_then(speediso_proto::units::parse_duration)
                        .unwrap_or(crate::inventory::LLDP_WAIT_DEFAULT)
                }
            };
            let opts = crate::inventory::Config {
                pci_ids,
                smart,
                lldp_wait,
                extra_nics: nic,
            };
            cmd_inventory(&env, json, &opts)
        }
        Command::Health { json } => cmd_health(&env, json),
        Command::SshKeys {
            action: SshKeysCmd::Install { check },
        } => cmd_ssh_keys_install(&env, check),
        Command::Burnin { part } => match part {
            BurninCmd::Selftest {
                kind,
                wait,
                disk,
                json,
            } => cmd_selftest(&env, &kind, wait.as_deref(), disk, json),
            BurninCmd::Gpu {
                level,
                duration,
                json,
            } => cmd_burnin_gpu(&env, level, duration, json),
            BurninCmd::Cpu(a) => cmd_burnin(&env, a.json, Stress::Cpu(&a)),
            BurninCmd::Scan(a) => cmd_burnin(&env, a.json, Stress::Scan(&a)),
            BurninCmd::Memory(a) => cmd_burnin(&env, a.json, Stress::Memory(&a)),
        },
    }
}

/// The console of a command whose result is a document: stdout, or with
/// `--json` stderr, so that stdout then carries only the document.
fn result_console(json: bool) -> Box<dyn Sink> {
    if json {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Box::new(sinks::console::Console::new(std::io::stderr(), tty))
    } else {
        Box::new(sinks::console::Console::stdout())
    }
}

/// Print a command's result document and return `rc`; a closed pipe
/// (`speediso inventory | head`) is fine.
fn print_result(text: &str, what: &str, rc: i32) -> Result<i32> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).with_context(|| format!("writing {what}"))
        }
        _ => Ok(rc),
    }
}

/// The burn-in parts that stress and check (`speediso burnin cpu|scan|memory`).
enum Stress<'a> {
    Cpu(&'a crate::burnin::cpu::CpuArgs),
    Scan(&'a crate::burnin::scan::ScanArgs),
    Memory(&'a crate::burnin::memory::MemoryArgs),
}

/// `speediso burnin cpu|scan|memory`: one step run through `run::AdHoc` (every
/// sink hears it); the result on stdout, exit 1 on FAIL, 2 on a bad option.
fn cmd_burnin(env: &Env, json: bool, what: Stress) -> Result<i32> {
    use crate::burnin::{cpu, memory, scan};
    let Some(options) = env.checked_options() else {
        return Ok(exit::USAGE);
    };
    let step = match &what {
        Stress::Cpu(_) => cpu::NAME,
        Stress::Scan(_) => scan::NAME,
        Stress::Memory(_) => memory::NAME,
    };
    let cpu_cfg = match &what {
        Stress::Cpu(a) => match a.config(&options) {
            Ok(c) => Some(c),
            Err(e) => {
                crate::say!("speediso: {e:#}");
                return Ok(exit::USAGE);
            }
        },
        Stress::Scan(a) => {
            // A named path that is no disk is a bad option: no run starts.
            if let Err(e) = scan::select(&env.root, &a.config(&options)) {
                crate::say!("speediso: {e:#}");
                return Ok(exit::USAGE);
            }
            None
        }
        Stress::Memory(_) => None,
    };
    // burnin memory: the command line's speediso.burnin.* first, each flag
    // given replaces its field; a size this machine cannot give is a bad
    // option: no run starts.
    let mem_cfg = match &what {
        Stress::Memory(a) => {
            let cfg = memory::Config::new(&toml::Table::new(), &options)
                .map(|mut c| {
                    a.apply(&mut c);
                    c
                })
                .and_then(|c| memory::planned_size(&c, &env.root).map(|_| c));
            match cfg {
                Ok(c) => Some(c),
                Err(e) => {
                    crate::say!("speediso: burnin memory: {e:#}");
                    return Ok(exit::USAGE);
                }
            }
        }
        _ => None,
    };
    let console = result_console(json);
    let bus = Bus::new(
        Some("burnin".into()),
        host::identify(&env.root, &env.cmdline),
        env.sinks_with(console, Record::AdHoc),
    );
    let run = crate::run::AdHoc::start(bus, step, step, false);
    let ev = run.step.clone();
    let res = match (&what, cpu_cfg) {
        (Stress::Cpu(_), Some(cfg)) => cpu::run(&cfg, &env.root, &ev).and_then(|r| {
            let fail = (r.errors_total > 0).then(|| {
                format!(
                    "burnin.cpu FAIL: {} wrong answer(s); first: {}",
                    r.errors_total,
                    r.errors.first().map(|e| e.to_string()).unwrap_or_default()
                )
            });
            Ok((serde_json::to_value(&r)?, cpu::summary(&r), fail))
        }),
        (Stress::Scan(a), _) => scan::run(&env.root, &a.config(&options), &ev).and_then(|r| {
            let bad = scan::failures(&r);
            let fail = (!bad.is_empty()).then(|| format!("burnin.scan FAIL: {}", bad.join("; ")));
            Ok((serde_json::to_value(&r)?, scan::summary(&r), fail))
        }),
        (Stress::Memory(_), _) => {
            let cfg = mem_cfg.as_ref().expect("configured above");
            memory::run(cfg, &env.root, &ev).and_then(|r| {
                let fail = (r.mismatch_count > 0)
                    .then(|| format!("burnin.memory FAIL: {} bad word(s)", r.mismatch_count));
                Ok((serde_json::to_value(&r)?, memory::render(&r), fail))
            })
        }
        (Stress::Cpu(_), None) => unreachable!("configured above"),
    };
    let (value, text, fail) = match res {
        Ok(v) => v,
        Err(e) => {
            run.finish(exit::FAILED, Some(format!("{e:#}")));
            return Err(e);
        }
    };
    ev.emit(crate::events::Body::Result {
        data: value.clone(),
    });
    let rc = match &fail {
        Some(why) => {
            ev.warn(why.clone());
            run.finish(exit::FAILED, Some(why.clone()))
        }
        None => run.finish(exit::SUCCESS, None),
    };
    let text = if json {
        serde_json::to_string_pretty(&value)? + "\n"
    } else {
        text
    };
    print_result(&text, "the burn-in result", rc)
}

fn cmd_bench(env: &Env, json: bool, what: &BenchCmd) -> Result<i32> {
    use crate::bench::{cpu, disk, memory};
    let step = match what {
        BenchCmd::Net(args) => {
            // Live throughput goes to every sink (journal, report
            // endpoint). The console is stdout, or with --json stderr,
            // and stdout then carries only the result document, as for
            // the other benchmarks.
            let console = result_console(json);
            let plan = match crate::netbench::cli_plan(args) {
                Ok(p) => p,
                Err(rc) => return Ok(rc),
            };
            let bus = Bus::new(
                Some("bench".into()),
                host::identify(&env.root, &env.cmdline),
                env.sinks_with(console, Record::AdHoc),
            );
            let run =
                crate::run::AdHoc::start(bus, crate::netbench::NAME, crate::netbench::NAME, false);
            return match crate::netbench::run(&plan, &env.root, &run.step) {
                Ok(data) => {
                    run.step
                        .emit(crate::events::Body::Result { data: data.clone() });
                    let rc = match crate::netbench::line_rate_failed(&data) {
                        Some(why) => {
                            crate::say!("speediso: bench net: {why}");
                            run.finish(exit::FAILED, Some(why))
                        }
                        None => run.finish(exit::SUCCESS, None),
                    };
                    if json {
                        crate::out!("{}", serde_json::to_string_pretty(&data)?);
                    }
                    Ok(rc)
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    run.finish(exit::FAILED, Some(msg));
                    Err(e)
                }
            };
        }
        BenchCmd::Cpu(_) => cpu::NAME,
        BenchCmd::Memory(_) => memory::NAME,
        BenchCmd::Disk(_) => disk::NAME,
    };
    let console = result_console(json);
    // A refused command line starts no run (like a usage error).
    if let BenchCmd::Disk(a) = what {
        if let Err(e) = disk::check_target(&env.root, &a.config(), &a.target) {
            crate::say!("speediso: {e:#}");
            return Ok(if e.downcast_ref::<disk::Refusal>().is_some() {
                exit::REFUSED
            } else {
                exit::FAILED
            });
        }
    }
    // Every sink, as for a task's step: by hand is no reason to be unheard.
    let bus = Bus::new(
        Some("bench".into()),
        host::identify(&env.root, &env.cmdline),
        env.sinks_with(console, Record::AdHoc),
    );
    let run = crate::run::AdHoc::start(bus, step, step, false);
    let ev = run.step.clone();
    let res = match what {
        BenchCmd::Cpu(a) => cpu::run(&a.config(), &ev)
            .and_then(|r| Ok((serde_json::to_value(&r)?, cpu::summary(&r)))),
        BenchCmd::Memory(a) => memory::run(&a.config(), &env.root, &ev)
            .and_then(|r| Ok((serde_json::to_value(&r)?, memory::summary(&r)))),
        BenchCmd::Net(_) => unreachable!("handled above"),
        BenchCmd::Disk(a) => {
            disk::run_target(&env.root, &a.config(), &a.target, &ev).and_then(|r| {
                if let Some(v) = r.verify.as_ref().filter(|v| v.errors > 0) {
                    crate::say!("speediso: verify found {} bad sector(s)", v.errors);
                }
                Ok((serde_json::to_value(&r)?, disk::summary(&r)))
            })
        }
    };
    let (value, text) = match res {
        Ok(v) => v,
        Err(e) if e.downcast_ref::<disk::Refusal>().is_some() => {
            crate::say!("speediso: {e:#}");
            return Ok(run.finish(exit::REFUSED, Some(format!("{e:#}"))));
        }
        Err(e) => {
            run.finish(exit::FAILED, Some(format!("{e:#}")));
            return Err(e);
        }
    };
    ev.emit(crate::events::Body::Result {
        data: value.clone(),
    });
    let bad_verify = value["verify"]["errors"].as_u64().is_some_and(|n| n > 0)
        || value["check"]["errors"].as_u64().is_some_and(|n| n > 0);
    let rc = if bad_verify {
        run.finish(exit::FAILED, Some("verification found bad sectors".into()))
    } else {
        run.finish(exit::SUCCESS, None)
    };
    if json {
        crate::out!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", crate::redact::text(&text));
    }
    Ok(rc)
}

fn cmd_dispatch(env: &Env, dry_run: bool, json: bool, wait: Option<Duration>) -> Result<i32> {
    let plan = plan::build(env.boot_task(), &env.cmdline, &env.catalog);
    if dry_run {
        if json {
            crate::out!(
                "{}",
                serde_json::to_string_pretty(&dispatch::dry_run_json(&plan))?
            );
        } else {
            print_plan(&plan);
        }
        return Ok(match &plan {
            Ok(_) => exit::SUCCESS,
            Err(r) => dispatch::rejection_status(r),
        });
    }
    let plan = match plan {
        Ok(p) => p,
        Err(r) => {
            let bus = env.bus(None, json);
            let rc = dispatch::reject(&bus, &r);
            bus.close(crate::run::CLOSE_DEADLINE);
            return Ok(rc);
        }
    };
    for w in &plan.warnings {
        crate::say!("speediso: warning: {w}");
    }
    // No timeout of our own by default (`wait` is only --wait):
    // `speediso run` enforces the task's limit (which a wipe raises from
    // its disks' sizes) and may stay up for undelivered certificates; the
    // unit has TimeoutStartSec=infinity.
    let systemd = SystemBus::connect()?;
    Ok(dispatch::start_and_wait(&plan, &systemd, wait, &mut |s| {
        crate::out!("{s}")
    }))
}

fn print_plan(plan: &Result<Plan, Rejection>) {
    match plan {
        Ok(p) => {
            crate::out!("task:        {} ({:?})", p.task.name, p.source);
            crate::out!("unit:        {}", p.unit());
            crate::out!("description: {}", p.task.description);
            crate::out!("steps:       {}", p.step_ids().join(", "));
            crate::out!(
                "destructive: {}",
                if p.task.destructive { "YES" } else { "no" }
            );
            crate::out!("after:       {}", p.after.as_str());
            for (k, v) in &p.options.redacted() {
                crate::out!("option:      speediso.{k}={v}");
            }
            for w in &p.warnings {
                crate::out!("warning:     {w}");
            }
        }
        Err(r) => crate::out!("rejected: {}", r.reason),
    }
}

fn cmd_run(env: &Env, task: &str, json: bool, confirm: Option<&str>) -> Result<i32> {
    let plan = match plan::build(
        Some((task.to_string(), TaskSource::Argument)),
        &env.cmdline,
        &env.catalog,
    ) {
        Ok(p) => p,
        Err(r) => {
            crate::say!("speediso: {}", r.reason);
            return Ok(exit::USAGE);
        }
    };
    let boot = env.boot_task().map(|(t, _)| t);
    let allowed = crate::run::destructive_allowed(task, boot.as_deref(), confirm);
    let bus = env.bus(Some(plan.task.name.clone()), json);
    let rc = crate::run::run(&plan, &env.root, &env.run_dir, &bus, allowed);
    // A run that succeeded and whose task powers off or reboots afterwards
    // must not take its erasure certificates down with it (audit item 6).
    // A failed run stays up anyway: the dispatcher applies after= only on
    // success.
    sinks::report::set_hold_evidence(
        rc == exit::SUCCESS
            && plan.after != tasks::After::Stay
            && !plan.options.flag("wipe.poweroff_undelivered"),
    );
    bus.close(crate::run::CLOSE_DEADLINE);
    if rc == exit::SUCCESS && sinks::report::evidence_lost() {
        crate::say!(
            "speediso: an erasure certificate of this run could not be delivered (refused, or \
             the spool was full): the run FAILS so the machine is not powered off without it"
        );
        return Ok(exit::FAILED);
    }
    Ok(rc)
}

/// `speediso tasks --options`: every option the run and the modules
/// declare (`plan::RUN_OPTIONS`, each module's `OPTIONS`), where it may be
/// given and what it does.
fn print_options(json: bool) -> Result<()> {
    use crate::registry;
    let row = |s: &crate::options::Spec, module: Option<&str>| {
        serde_json::json!({
            "module": module,
            "cmdline": s.key.map(|k| format!("speediso.{k}")),
            "step": s.step,
            "flag": s.flag.map(|f| format!("--{f}")),
            "help": s.help,
        })
    };
    if json {
        let mut rows: Vec<serde_json::Value> =
            plan::RUN_OPTIONS.iter().map(|s| row(s, None)).collect();
        for m in registry::MODULES {
            rows.extend(m.options().iter().map(|s| row(s, Some(m.name()))));
        }
        crate::out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    crate::out!("kernel command line options (speediso.<key>=<value>):");
    for (s, users) in plan::known_options() {
        let by = if users.is_empty() {
            String::new()
        } else {
            format!(" [{}]", users.join(", "))
        };
        crate::out!(
            "  speediso.{:<26} {}{by}",
            s.key.unwrap_or_default(),
            s.help
        );
    }
    crate::out!("\nper module: task-file step options (options = {{ ... }} in a [[steps]] table; any other key rejects the task) and flags:");
    for m in registry::MODULES {
        let keys = registry::step_keys(*m);
        let shown = if keys.is_empty() {
            "none (use its speediso.* options)".to_string()
        } else {
            keys.join(", ")
        };
        crate::out!("  {:<18} {shown}", m.name());
        for s in m.options() {
            let place = [
                s.key.map(|k| format!("speediso.{k}")),
                s.step.map(|k| format!("step {k}")),
                s.flag
                    .map(|f| format!("speediso {} --{f}", m.name().replace('.', " "))),
            ];
            let place: Vec<String> = place.into_iter().flatten().collect();
            crate::out!("      {}: {}", place.join(", "), s.help);
        }
    }
    Ok(())
}

fn cmd_tasks(env: &Env, json: bool, options: bool) -> Result<i32> {
    if options {
        print_options(json)?;
        return Ok(exit::SUCCESS);
    }
    if json {
        let v = serde_json::json!({
            "tasks": env.catalog.tasks.values().collect::<Vec<_>>(),
            "broken": env.catalog.broken,
        });
        crate::out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::SUCCESS);
    }
    crate::out!(
        "{:<14} {:<11} {:<9} {:<6} STEPS",
        "TASK",
        "DESTRUCTIVE",
        "AFTER",
        "LIMIT"
    );
    for t in env.catalog.tasks.values() {
        let steps: Vec<String> = t
            .steps
            .iter()
            .map(|s| {
                let avail = if crate::registry::module_for(&s.module).is_ok() {
                    ""
                } else {
                    " (unavailable)"
                };
                format!("{}{avail}", s.id())
            })
            .collect();
        crate::out!(
            "{:<14} {:<11} {:<9} {:<6} {}",
            t.name,
            if t.destructive { "yes" } else { "no" },
            t.after.as_str(),
            t.time_limit
                .map(|d| sinks::human_duration(d.as_secs_f64()))
                .unwrap_or_else(|| "none".into()),
            if steps.is_empty() {
                "(none)".into()
            } else {
                steps.join(", ")
            }
        );
        crate::out!("{:<14} {}", "", t.description);
    }
    for (name, err) in &env.catalog.broken {
        crate::out!("{name:<14} BROKEN: {err}");
    }
    Ok(exit::SUCCESS)
}

fn cmd_inventory(env: &Env, json: bool, opts: &crate::inventory::Config) -> Result<i32> {
    let (inv, notes) = crate::inventory::collect(&env.root, &env.cmdline, opts)?;
    let text = if json {
        for n in &notes {
            crate::say!("speediso: note: {n}");
        }
        serde_json::to_string_pretty(&inv)? + "\n"
    } else {
        crate::inventory::render(&inv, &notes)
    };
    print_result(&text, "the inventory", exit::SUCCESS)
}

/// `speediso ssh-keys install`: every key of every speediso.ssh_key= into
/// root's authorized_keys, or none when one is bad (exit 2, naming it).
fn cmd_ssh_keys_install(env: &Env, check: bool) -> Result<i32> {
    use crate::sshkeys;
    let key = format!("speediso.{}", sshkeys::KEY);
    let values: Vec<&str> = env.cmdline.all(&key).collect();
    if values.is_empty() {
        crate::say!("speediso: no {key}= on the kernel command line: no keys to add");
    }
    let keys = match sshkeys::gather(&values) {
        Ok(k) => k,
        Err(e) => {
            crate::say!("speediso: {e:#}; no SSH key installed");
            return Ok(exit::USAGE);
        }
    };
    for k in &keys {
        crate::out!("{} key: {k}", if check { "valid" } else { "SSH" });
    }
    if check {
        return Ok(exit::SUCCESS);
    }
    let r = sshkeys::install(&env.root, &keys)?;
    crate::out!(
        "{}: {} key(s) from {key}= {}{}",
        r.path.display(),
        keys.len(),
        if r.changed {
            "installed"
        } else {
            "already installed"
        },
        if r.kept > 0 {
            format!("; {} line(s) of the image's own kept", r.kept)
        } else {
            String::new()
        }
    );
    Ok(exit::SUCCESS)
}

/// `speediso health`: the report on stdout; exit 1 on a FAIL verdict.
fn cmd_health(env: &Env, json: bool) -> Result<i32> {
    use crate::health;
    let Some(options) = env.checked_options() else {
        return Ok(exit::USAGE);
    };
    let cfg = match health::Config::new(&toml::Table::new(), &options) {
        Ok(c) => c,
        Err(e) => {
            crate::say!("speediso: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    // A run of one step with every sink, as for the benchmarks: the
    // report reaches the journal, the state file and the report endpoint.
    // The console lines go to stderr; stdout carries only the report.
    let run = adhoc_on_stderr(env, health::NAME);
    let r = health::collect(&env.root, &cfg);
    run.step.emit(crate::events::Body::Result {
        data: serde_json::to_value(&r)?,
    });
    let rc = if r.verdict == health::Verdict::Fail {
        run.finish(
            exit::FAILED,
            Some(format!(
                "health verdict FAIL ({} finding(s) at FAIL)",
                r.findings
                    .iter()
                    .filter(|f| f.severity == health::Severity::Fail)
                    .count()
            )),
        )
    } else {
        run.finish(exit::SUCCESS, None)
    };
    let text = if json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        health::render(&r)
    };
    print_result(&text, "the health report", rc)
}

/// A command run by hand as a one-step run that every sink hears, its
/// console lines on stderr so stdout carries only its report.
fn adhoc_on_stderr(env: &Env, name: &'static str) -> crate::run::AdHoc {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let console: Box<dyn Sink> = Box::new(sinks::console::Console::new(std::io::stderr(), tty));
    let bus = Bus::new(
        Some(name.into()),
        host::identify(&env.root, &env.cmdline),
        env.sinks_with(console, Record::AdHoc),
    );
    crate::run::AdHoc::start(bus, name, name, false)
}

/// End a run whose result has a verdict (`pass`, `warn`, `fail`, or
/// `skipped`): the result to every sink, then the exit status: 1 on fail
/// (the run failed with `why`), 3 on warn (nothing failed, but something
/// was not judged: never a plain pass), else 0.
fn finish_judged(run: crate::run::AdHoc, verdict: &str, why: &str, data: serde_json::Value) -> i32 {
    run.step.emit(crate::events::Body::Result { data });
    match verdict {
        "fail" => run.finish(exit::FAILED, Some(why.into())),
        "warn" => {
            run.finish(exit::SUCCESS, None);
            3
        }
        _ => run.finish(exit::SUCCESS, None),
    }
}

/// `speediso burnin gpu`: DCGM diagnostics or gpu_burn on every GPU.
fn cmd_burnin_gpu(
    env: &Env,
    level: Option<String>,
    duration: Option<String>,
    json: bool,
) -> Result<i32> {
    use crate::burnin::gpu;
    let Some(options) = env.checked_options() else {
        return Ok(exit::USAGE);
    };
    let mut step = toml::Table::new();
    if let Some(l) = level {
        match l.parse::<i64>() {
            Ok(n) => step.insert("level".into(), n.into()),
            Err(_) => step.insert("level".into(), l.into()),
        };
    }
    if let Some(d) = duration {
        step.insert("duration".into(), d.into());
    }
    let cfg = match gpu::Config::new(&step, &options) {
        Ok(c) => c,
        Err(e) => {
            crate::say!("speediso: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let run = adhoc_on_stderr(env, gpu::NAME);
    let ev = run.step.clone();
    let r = gpu::run(&env.root, &cfg, &|m| {
        ev.progress(crate::events::Progress {
            message: Some(m.to_string()),
            ..Default::default()
        })
    });
    let rc = finish_judged(
        run,
        r.verdict,
        "a GPU test failed",
        serde_json::to_value(&r)?,
    );
    let text = if json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        let mut t = format!(
            "GPU BURN-IN {} ({}, {} GPU(s))\n",
            r.verdict.to_uppercase(),
            r.tool.unwrap_or("no tool"),
            r.gpus.len()
        );
        for x in &r.results {
            t += &format!(
                "  GPU {:<4} {:<12} {:<24} {}{}\n",
                x.gpu.as_deref().unwrap_or("-"),
                x.category,
                x.test,
                x.status,
                if x.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", x.detail)
                }
            );
        }
        if let Some(n) = &r.note {
            t += &format!("  {n}\n");
        }
        t
    };
    print_result(&text, "the GPU burn-in result", rc)
}

/// `speediso burnin selftest`: the disks' own self-tests.
fn cmd_selftest(
    env: &Env,
    kind: &str,
    wait: Option<&str>,
    disks: Vec<String>,
    json: bool,
) -> Result<i32> {
    use crate::burnin::selftest;
    let Some(options) = env.checked_options() else {
        return Ok(exit::USAGE);
    };
    let mut step = toml::Table::new();
    step.insert("kind".into(), kind.into());
    if let Some(w) = wait {
        step.insert("wait".into(), w.into());
    }
    let mut cfg = match selftest::Config::new(&step, &options) {
        Ok(c) => c,
        Err(e) => {
            crate::say!("speediso: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    cfg.disks = disks;
    let run = adhoc_on_stderr(env, selftest::NAME);
    let ev = run.step.clone();
    let r = selftest::run(&env.root, &cfg, &|disk, pct| {
        ev.progress(crate::events::Progress {
            percent: Some(pct as f64),
            message: Some(format!("{disk}: self-test {pct}%")),
            ..Default::default()
        })
    });
    let rc = finish_judged(
        run,
        r.verdict,
        "a disk self-test failed",
        serde_json::to_value(&r)?,
    );
    let text = if json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        selftest::render(&r)
    };
    print_result(&text, "the self-test result", rc)
}

fn cmd_status(env: &Env, json: bool, n_events: usize) -> Result<i32> {
    let boot = env.boot_task();
    let plan = plan::build(boot.clone(), &env.cmdline, &env.catalog);
    let unit = plan.as_ref().ok().map(|p| p.unit());
    let unit_state = unit.as_ref().map(|u| {
        SystemBus::connect()
            .and_then(|s| s.unit_state(u))
            .map_err(|e| format!("{e:#}"))
    });
    let spool_dir = crate::report::spool::spool_dir(&env.run_dir);
    let backlog = crate::report::spool::backlog(&spool_dir);
    let undelivered_certs = crate::report::spool::undelivered_certificates_in(&spool_dir);
    // Written by a run that stays up for its certificates (audit item 6).
    let holding: Option<serde_json::Value> =
        std::fs::read(crate::report::spool::hold_path(&spool_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    let state = sinks::state::read(&env.run_dir)
        .with_context(|| format!("reading state in {}", env.run_dir.display()))?;
    let adhoc = sinks::state::read_adhoc(&env.run_dir)
        .with_context(|| format!("reading ad-hoc state in {}", env.run_dir.display()))?;
    if json {
        let v = serde_json::json!({
            "boot_task": boot.as_ref().map(|(t, _)| t),
            "plan": dispatch::dry_run_json(&plan),
            "unit": unit,
            "unit_state": unit_state.as_ref().map(|r| match r {
                Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e}),
            }),
            "state": state,
            "adhoc": adhoc,
            "report_backlog": {
                "spools": backlog.0,
                "undelivered_events": backlog.1,
                "undelivered_certificates": undelivered_certs,
                "holding_for_certificates": holding,
            },
        });
        crate::out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::SUCCESS);
    }
    match (&boot, &plan) {
        (_, Ok(p)) => crate::out!("boot task: {} ({:?})", p.task.name, p.source),
        (None, Err(_)) => crate::out!("boot task: none (rescue: nothing runs)"),
        (Some((t, _)), Err(r)) => crate::out!("boot task: {t:?} REJECTED: {}", r.reason),
    }
    if let (Some(u), Some(st)) = (&unit, &unit_state) {
        match st {
            Ok(s) => crate::out!("unit:      {u}: {} ({})", s.active_state, s.sub_state),
            Err(e) => crate::out!("unit:      {u}: state unknown ({e})"),
        }
    }
    if backlog.1 > 0 {
        crate::out!(
            "report:    {} event(s) not yet delivered, in {} spool(s) under {}",
            backlog.1,
            backlog.0,
            spool_dir.display()
        );
    }
    if undelivered_certs > 0 {
        crate::out!("evidence:  {undelivered_certs} erasure certificate(s) not yet delivered");
    }
    if let Some(h) = &holding {
        crate::out!(
            "HOLDING:   the run stays up until its certificates reach {} (since {}; last error: {}); \
             speediso.wipe.poweroff_undelivered=1 would power off without them",
            h["endpoint"].as_str().unwrap_or("?"),
            h["since"].as_str().unwrap_or("?"),
            h["last_error"].as_str().unwrap_or("none"),
        );
    }
    // One line a run: its id, task, outcome and times.
    let run_line = |label: &str, st: &sinks::state::State| {
        crate::out!(
            "{label:<10} {} task {} {} (started {}, finished {})",
            st.run_id,
            st.task.as_deref().unwrap_or("-"),
            st.outcome,
            st.started.as_deref().unwrap_or("-"),
            st.finished.as_deref().unwrap_or("-")
        )
    };
    if let Some(a) = &adhoc {
        run_line("by hand:", a);
    }
    let Some(st) = state else {
        crate::out!("no task run recorded in {}", env.run_dir.display());
        return Ok(exit::SUCCESS);
    };
    run_line("last run:", &st);
    let skip = st.events.len().saturating_sub(n_events);
    if !st.events.is_empty() {
        crate::out!("events:");
    }
    for ev in st.events.iter().skip(skip) {
        let time = ev.ts.get(11..19).unwrap_or(&ev.ts);
        crate::out!("  {time}  {}", sinks::describe(ev));
    }
    for (step, data) in &st.results {
        let text = serde_json::to_string(data)?;
        let short: String = text.chars().take(160).collect();
        crate::out!(
            "result [{step}]: {short}{}",
            if text.len() > 160 { "…" } else { "" }
        );
    }
    Ok(exit::SUCCESS)
}

fn cmd_wipe(env: &Env, a: WipeArgs) -> Result<i32> {
    use crate::wipe::{self, select::Request, verify::VerifyMode};
    let Some(options) = env.checked_options() else {
        return Ok(exit::USAGE);
    };
    // The command line's speediso.wipe.* first; each flag given replaces
    // its field.
    let mut cfg = wipe::Config::from_options(&options)?;
    if let Some(m) = &a.method {
        cfg.method = wipe::Method::parse(m).expect("clap checked --method");
    }
    if let Some(v) = &a.verify {
        let Some(mode) = VerifyMode::parse(v) else {
            crate::say!("speediso: --verify {v:?}: expected full, off or sample:FRACTION (0 < FRACTION <= 1)");
            return Ok(exit::USAGE);
        };
        cfg.verify = mode;
    }
    if let Some(p) = a.passes {
        cfg.passes = p;
    }
    if let Some(s) = &a.stream {
        cfg.stream = wipe::stream::Choice::parse(s).expect("clap checked --stream");
    }
    cfg.blank |= a.blank;
    if let Some(k) = &a.key {
        cfg.key = wipe::KeySource::File(k.clone());
    }
    if a.device.is_empty() && !a.all {
        crate::say!("speediso: name the disks with --device PATH, or use --all");
        return Ok(exit::USAGE);
    }
    let req = Request {
        devices: a.device.clone(),
        all: a.all,
        ..Default::default()
    }
    .with_targets(&cfg.targets)
    .with_env();
    let p = match wipe::plan(&env.root, &req, &cfg) {
        Ok(p) => p,
        Err(e) => {
            crate::say!("speediso: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let show = |p: &wipe::WipePlan| -> Result<()> {
        if a.json {
            crate::out!("{}", serde_json::to_string_pretty(p)?);
        } else {
            print!("{}", crate::redact::text(&wipe::describe_plan(p)));
        }
        Ok(())
    };
    if a.plan {
        if !a.json {
            crate::out!("WIPE PLAN (nothing is erased with --plan)");
        }
        show(&p)?;
        return Ok(exit::SUCCESS);
    }
    if p.erase.is_empty() {
        show(&p)?;
        crate::say!("speediso: no disk is eligible for wiping; nothing erased");
        if let Some(b) = p.blocking_summary() {
            crate::say!("speediso: {b}");
        }
        return Ok(exit::FAILED);
    }
    let unconfirmed: Vec<String> = p
        .erase
        .iter()
        .filter(|e| {
            let name = e.disk.confirm_name();
            !a.confirm.contains(&name)
        })
        .map(|e| {
            format!(
                "{} (confirm with {})",
                e.disk.path.display(),
                e.disk.confirm_name()
            )
        })
        .collect();
    if !unconfirmed.is_empty() {
        show(&p)?;
        crate::say!(
            "speediso: refusing to erase: each disk must be confirmed with --confirm SERIAL (or PATH when it has no serial); not confirmed: {}",
            unconfirmed.join(", ")
        );
        return Ok(exit::REFUSED);
    }
    use crate::events::Body;
    let run = crate::run::AdHoc::start(
        env.adhoc_bus(Some(wipe::NAME.into()), a.json),
        wipe::NAME,
        wipe::NAME,
        true,
    );
    let ev = run.step.clone();
    let res = wipe::execute(
        &p,
        &cfg,
        &env.root,
        &env.run_dir,
        run.run_id(),
        Some(ev.clone()),
    );
    let mut error = None;
    let rc = match res {
        Ok(r) => {
            ev.emit(Body::Result {
                data: serde_json::to_value(&r)?,
            });
            if !a.json {
                for d in &r.disks {
                    crate::out!(
                        "{}: {} by {} ({}), verify {} {}{}",
                        d.device,
                        d.outcome.to_uppercase(),
                        d.method.name(),
                        d.method.category(),
                        d.verify.method,
                        d.verify.result,
                        d.error
                            .as_ref()
                            .map(|e| format!(" — {e}"))
                            .unwrap_or_default()
                    );
                }
                for c in &r.certificate_files {
                    crate::out!("certificate: {c}");
                }
                crate::out!("public key ({}): {}", r.key_source, r.public_key);
            }
            // Named devices (--device) are the only ones in the plan, so
            // the rule is the task's: a blocking skip fails the run.
            let mut errors = Vec::new();
            if !r.failed.is_empty() {
                crate::say!("speediso: wipe FAILED on: {}", r.failed.join("; "));
                errors.push(format!("wipe failed on: {}", r.failed.join("; ")));
            }
            if let Some(b) = p.blocking_summary() {
                crate::say!("speediso: wipe FAILED: not erased: {b}");
                errors.push(format!("not erased: {b}"));
            }
            if errors.is_empty() {
                exit::SUCCESS
            } else {
                error = Some(errors.join("; "));
                exit::FAILED
            }
        }
        Err(e) => {
            crate::say!("speediso: wipe: {e:#}");
            error = Some(format!("{e:#}"));
            exit::FAILED
        }
    };
    Ok(run.finish(rc, error))
}

fn cmd_install(env: &Env, a: InstallArgs) -> Result<i32> {
    use crate::events::Body;
    use crate::install::{self, Config};
    let Some(options) = env.checked_options() else {
        return Ok(exit::USAGE);
    };
    // The command line's speediso.install.* first; each flag given
    // replaces its field, checked as the option would be.
    let mut cfg = match Config::read(&options) {
        Ok(c) => c,
        Err(e) => {
            crate::say!("speediso: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    let flags = [
        ("image", &a.image, &mut cfg.image),
        ("sha256", &a.sha256, &mut cfg.sha256),
        ("kernel", &a.kernel, &mut cfg.kernel),
        ("initrd", &a.initrd, &mut cfg.initrd),
        ("append", &a.append, &mut cfg.append),
        ("kernel-sha256", &a.kernel_sha256, &mut cfg.kernel_sha256),
        ("initrd-sha256", &a.initrd_sha256, &mut cfg.initrd_sha256),
    ];
    for (flag, given, field) in flags {
        let Some(v) = given else { continue };
        let spec = install::OPTIONS
            .iter()
            .find(|s| s.flag == Some(flag))
            .expect("every install flag is declared");
        if let Err(why) = spec.check(v) {
            crate::say!("speediso: --{flag}: {why}");
            return Ok(exit::USAGE);
        }
        *field = Some(if flag.ends_with("sha256") {
            v.to_ascii_lowercase()
        } else {
            v.clone()
        });
    }
    if let Some(t) = &a.target {
        match install::TargetSel::parse(t) {
            Ok(t) => cfg.target = Some(t),
            Err(e) => {
                crate::say!("speediso: --target: {e:#}");
                return Ok(exit::USAGE);
            }
        }
    }
    cfg.insecure |= a.insecure;
    if let Err(e) = cfg.check() {
        crate::say!("speediso: {e:#}");
        return Ok(exit::USAGE);
    }
    let disk = if cfg.image.is_some() {
        // An exclusion that names no disk rejects the plan, as for wipe.
        if let Err(e) = crate::wipe::select::check_excludes(&env.root, &cfg.targets.exclude) {
            crate::say!("speediso: {e:#}");
            return Ok(exit::USAGE);
        }
        let disk = match install::resolve_target(&env.root, cfg.target.as_ref(), &cfg.targets) {
            Ok(d) => d,
            Err(e) => {
                crate::say!("speediso: {e:#}");
                return Ok(exit::REFUSED);
            }
        };
        if !install::confirmed(&disk, a.confirm.as_deref()) {
            crate::say!(
                "speediso: refusing to write {} ({} bytes{}): confirm with --confirm {}",
                disk.path.display(),
                disk.size_bytes,
                disk.model
                    .as_ref()
                    .map(|m| format!(", {m}"))
                    .unwrap_or_default(),
                disk.confirm_name()
            );
            return Ok(exit::REFUSED);
        }
        Some(disk)
    } else {
        None
    };
    let run = crate::run::AdHoc::start(
        env.adhoc_bus(Some(install::NAME.into()), a.json),
        install::NAME,
        install::NAME,
        disk.is_some(),
    );
    let ev = run.step.clone();
    let res = match &disk {
        Some(d) => install::install_image(&cfg, d, Some(&ev)).and_then(|r| {
            if !a.json {
                crate::out!(
                    "installed {} ({:?}, sha256 {}) to {}: {} bytes written and read back in {:.1}s ({:.1} MB/s)",
                    r.image, r.format, r.sha256, r.target.path.display(), r.bytes_written, r.duration_s, r.mb_per_s
                );
            }
            Ok(serde_json::to_value(&r)?)
        }),
        None => install::kexec::load(&cfg).and_then(|l| {
            if !a.json {
                crate::out!(
                    "installer kernel {} loaded (kexec_loaded={}); boot it with `systemctl kexec`",
                    l.kernel.url, l.loaded
                );
            }
            Ok(serde_json::to_value(&l)?)
        }),
    };
    let (rc, error) = match res {
        Ok(data) => {
            ev.emit(Body::Result { data });
            (exit::SUCCESS, None)
        }
        Err(e) => {
            crate::say!("speediso: install: {e:#}");
            (exit::FAILED, Some(format!("{e:#}")))
        }
    };
    Ok(run.finish(rc, error))
}

/// What `verify-cert` says of the key that signed.
fn signer_note(v: &serde_json::Value) {
    match v["signer"]["source"].as_str() {
        Some("generated") => crate::out!(
            "note: signed by a key generated for that run: it proves the certificate \
             was not altered, not who produced it"
        ),
        Some(src) => crate::out!("key source (signed): {src}"),
        None => crate::out!("note: schema 1 certificate: the key's source is not signed"),
    }
}

fn cmd_stream_bench(seconds: f64, chunk: usize, only: Option<&str>, json: bool) -> Result<i32> {
    use crate::wipe::stream::{self, Algorithm};
    if !(seconds > 0.0 && seconds <= 600.0) || chunk == 0 {
        crate::say!("speediso: --seconds must be in (0, 600] and --chunk positive");
        return Ok(exit::USAGE);
    }
    let dur = std::time::Duration::from_secs_f64(seconds);
    let mut algs = serde_json::Map::new();
    for alg in [Algorithm::Aes128Ctr, Algorithm::ChaCha8] {
        if only.is_some_and(|o| o != alg.name()) {
            continue;
        }
        let (fill, fill_wall) = stream::throughput(alg, false, chunk, dur);
        let (xor, xor_wall) = stream::throughput(alg, true, chunk, dur);
        if !json {
            crate::out!(
                "{:<12} fill {:6.2} GB/s   xor {:6.2} GB/s   per CPU second (wall clock: {:.2}, {:.2}; one core, {chunk}-byte buffers)",
                alg.name(),
                fill / 1e9,
                xor / 1e9,
                fill_wall / 1e9,
                xor_wall / 1e9
            );
        }
        algs.insert(
            alg.name().into(),
            serde_json::json!({
                "fill_bytes_per_s": fill as u64,
                "xor_bytes_per_s": xor as u64,
                "fill_bytes_per_wall_s": fill_wall as u64,
                "xor_bytes_per_wall_s": xor_wall as u64,
            }),
        );
    }
    let auto = stream::select(stream::Choice::Auto, stream::cpu_has_aes());
    if json {
        crate::out!(
            "{}",
            serde_json::json!({ "chunk": chunk, "seconds": seconds, "auto": auto, "algorithms": algs })
        );
    } else {
        crate::out!("auto picks {}", auto.reason);
    }
    Ok(exit::SUCCESS)
}

fn cmd_verify_cert(file: &Path, pubkey: &str) -> Result<i32> {
    use crate::wipe::cert;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let key = cert::parse_public(pubkey)?;
    match cert::verify(&v, &key) {
        Ok(()) if v["schema"] == crate::wipe::server_cert::SERVER_SCHEMA => {
            let n = |k: &str| v["summary"][k].as_u64().unwrap_or(0);
            crate::out!(
                "OK: {} server certificate {} for host {} ({} disk(s): {} wiped, {} unverified, {} failed; {} not erased that should have been), signed by {}",
                v["outcome"].as_str().unwrap_or("?"),
                v["id"].as_str().unwrap_or("?"),
                v["host"]["serial"]
                    .as_str()
                    .or(v["host"]["uuid"].as_str())
                    .unwrap_or("?"),
                n("disks"),
                n("wiped"),
                n("wiped_unverified"),
                n("failed"),
                n("skipped_blocking"),
                hex::encode(key.to_bytes())
            );
            for d in v["disks"].as_array().into_iter().flatten() {
                crate::out!(
                    "  {} {} {} ({}, verification {}): {}",
                    d["device_path"].as_str().unwrap_or("?"),
                    d["serial"].as_str().unwrap_or("-"),
                    d["method"].as_str().unwrap_or("?"),
                    d["category"].as_str().unwrap_or("?"),
                    d["verification"].as_str().unwrap_or("?"),
                    d["outcome"].as_str().unwrap_or("?"),
                );
            }
            for k in v["skipped"].as_array().into_iter().flatten() {
                crate::out!(
                    "  {} not erased ({}): {}",
                    k["device_path"].as_str().unwrap_or("?"),
                    k["class"].as_str().unwrap_or("?"),
                    k["reasons"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            signer_note(&v);
            Ok(exit::SUCCESS)
        }
        Ok(()) => {
            crate::out!(
                "OK: {} certificate {} for {} ({}), signed by {}",
                v["outcome"].as_str().unwrap_or("?"),
                v["id"].as_str().unwrap_or("?"),
                v["media"]["serial"]
                    .as_str()
                    .or(v["media"]["device_path"].as_str())
                    .unwrap_or("?"),
                v["sanitization"]["method"].as_str().unwrap_or("?"),
                hex::encode(key.to_bytes())
            );
            signer_note(&v);
            Ok(exit::SUCCESS)
        }
        Err(e) => {
            crate::out!("INVALID: {}: {e:#}", file.display());
            Ok(exit::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag a module declares is a flag of its ad-hoc command
    /// (`bench.cpu`: `speediso bench cpu`), so `tasks --options` never
    /// names one that does not exist.
    #[test]
    fn declared_flags_exist_on_the_modules_commands() {
        let cli = Cli::command();
        for m in crate::registry::MODULES {
            let mut cmd = &cli;
            for part in m.name().split('.') {
                cmd = cmd
                    .find_subcommand(part)
                    .unwrap_or_else(|| panic!("{}: no command `{part}`", m.name()));
            }
            let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
            for s in m.options() {
                if let Some(f) = s.flag {
                    assert!(
                        longs.contains(&f),
                        "{}: declares --{f}, which `speediso {}` lacks (has {longs:?})",
                        m.name(),
                        m.name().replace('.', " ")
                    );
                }
            }
        }
    }
}
