//! The step modules by name: the one list of them. Above every module
//! (it names their types), below `plan` and `run` (which drive them
//! through `Step`, with the module's type erased).

use crate::events::StepEvents;
use crate::module::{Deadline, Module, StepContext};
use crate::options::{Options, Spec};
use crate::root::Root;
use anyhow::Result;
use std::marker::PhantomData;
use std::path::Path;

/// A module as plan and run see it: its declarations, a check of its
/// options, and a run that configures it first.
pub trait Step: Send + Sync {
    fn name(&self) -> &'static str;
    fn options(&self) -> &'static [Spec];
    fn destructive(&self) -> bool;
    /// Configure from the step's and the command line's options, to
    /// refuse a bad task before anything runs.
    fn check(&self, step: &toml::Table, options: &Options) -> Result<()>;
    /// Configure, then run.
    fn run(&self, step: &toml::Table, options: &Options, at: Running) -> Result<serde_json::Value>;
}

/// What the runner gives a step besides its options.
pub struct Running<'a> {
    pub root: &'a Root,
    pub run_dir: &'a Path,
    pub events: StepEvents,
    pub destructive_allowed: bool,
    pub deadline: Deadline,
}

struct Entry<M>(PhantomData<fn() -> M>);

impl<M: Module> Step for Entry<M> {
    fn name(&self) -> &'static str {
        M::NAME
    }
    fn options(&self) -> &'static [Spec] {
        M::OPTIONS
    }
    fn destructive(&self) -> bool {
        M::DESTRUCTIVE
    }
    fn check(&self, step: &toml::Table, options: &Options) -> Result<()> {
        M::configure(step, options).map(|_| ())
    }
    fn run(&self, step: &toml::Table, options: &Options, at: Running) -> Result<serde_json::Value> {
        let config = M::configure(step, options)?;
        M::run(&StepContext {
            root: at.root,
            run_dir: at.run_dir,
            config: &config,
            events: at.events,
            destructive_allowed: at.destructive_allowed,
            deadline: at.deadline,
        })
    }
}

/// Every module, in the order `speediso tasks --options` lists them.
pub const MODULES: &[&dyn Step] = &[
    &Entry::<crate::inventory::Inventory>(PhantomData),
    &Entry::<crate::bench::cpu::BenchCpu>(PhantomData),
    &Entry::<crate::bench::memory::BenchMemory>(PhantomData),
    &Entry::<crate::bench::disk::BenchDisk>(PhantomData),
    &Entry::<crate::netbench::NetBench>(PhantomData),
    &Entry::<crate::wipe::Wipe>(PhantomData),
    &Entry::<crate::install::Install>(PhantomData),
    &Entry::<crate::health::Health>(PhantomData),
    &Entry::<crate::burnin::selftest::SelfTest>(PhantomData),
    &Entry::<crate::burnin::cpu::BurninCpu>(PhantomData),
    &Entry::<crate::burnin::scan::BurninScan>(PhantomData),
    &Entry::<crate::burnin::memory::BurninMemory>(PhantomData),
    &Entry::<crate::burnin::gpu::BurninGpu>(PhantomData),
];

/// Every module name a task file may use.
pub fn names() -> Vec<&'static str> {
    MODULES.iter().map(|m| m.name()).collect()
}

/// The module called `name`; the error lists the known ones.
pub fn module_for(name: &str) -> Result<&'static dyn Step, UnknownModule> {
    MODULES
        .iter()
        .copied()
        .find(|m| m.name() == name)
        .ok_or_else(|| UnknownModule(name.to_string()))
}

/// The task-file step keys `m` reads.
pub fn step_keys(m: &dyn Step) -> Vec<&'static str> {
    m.options().iter().filter_map(|s| s.step).collect()
}

/// A module name no module has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModule(pub String);

impl std::fmt::Display for UnknownModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown module '{}'; known: {}",
            self.0,
            names().join(", ")
        )
    }
}

impl std::error::Error for UnknownModule {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{sample, Kind};

    #[test]
    fn unknown_modules_are_named_with_the_known_ones() {
        assert_eq!(
            module_for("nope").err().unwrap().to_string(),
            format!("unknown module 'nope'; known: {}", names().join(", "))
        );
        assert_eq!(module_for("bench.disk").unwrap().name(), "bench.disk");
        let mut n = names();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), MODULES.len(), "a module name appears twice");
    }

    /// Issue #14: every option a module lists is read by it. Each
    /// `speediso.*` key, set to a valid value, is asked for while the
    /// module configures; each step key, set to a value of the wrong type,
    /// makes the configuration fail naming it.
    #[test]
    fn every_declared_option_is_read_by_its_module() {
        for m in MODULES {
            let opts = Options::from_pairs(
                m.options()
                    .iter()
                    .filter_map(|s| s.key.map(|k| (k, sample(s.kind)))),
            );
            let _ = m.check(&toml::Table::new(), &opts);
            let read = opts.keys_read();
            for s in m.options() {
                if let Some(k) = s.key {
                    assert!(
                        read.contains(k),
                        "{}: declares speediso.{k} but never reads it",
                        m.name()
                    );
                }
                if let Some(k) = s.step {
                    let mut step = toml::Table::new();
                    step.insert(k.into(), toml::Value::Table(toml::Table::new()));
                    let err = m
                        .check(&step, &Options::default())
                        .err()
                        .unwrap_or_else(|| {
                            panic!("{}: step option {k} = {{}} was accepted", m.name())
                        });
                    assert!(
                        format!("{err:#}").contains(k),
                        "{}: step option {k}: {err:#}",
                        m.name()
                    );
                }
                assert!(
                    s.key.is_some() || s.step.is_some() || s.flag.is_some(),
                    "{}: an option given nowhere",
                    m.name()
                );
                if let (Some(_), Kind::Choice(w)) = (s.key, s.kind) {
                    assert!(!w.is_empty());
                }
            }
        }
    }
}
