//! `outrig plan`: load the config, compute the desired state, observe podman, compare
//! with the last applied session, show the plan.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use crate::cli::{GlobalArgs, PlanArgs};
use crate::config;
use crate::error::{Error, ExitStatus};
use crate::plan::context::ManifestCache;
use crate::plan::desired::{self, Inputs, Target};
use crate::plan::{Plan, diff, render};
use crate::podman::inspect::{self, ObserveError};
use crate::podman::{PodmanCommand, Runtime};
use crate::session;

pub fn run(global: &GlobalArgs, args: &PlanArgs, cwd: &Path) -> Result<ExitStatus, Error> {
    let plan = compute(
        global,
        Target::Agent(args.agent.as_deref()),
        args.session_root.as_deref(),
        cwd,
    )?
    .plan;
    if let Some(path) = &args.out {
        crate::fs::write_atomic(path, render::json(&plan).as_bytes()).map_err(|e| {
            Error::new(format!("cannot write the plan to `{}`", path.display()))
                .cause(e.to_string())
        })?;
    }
    if args.json {
        let _ = std::io::stdout()
            .lock()
            .write_all(render::json(&plan).as_bytes());
    } else {
        anstream::print!("{}", render::human(&plan));
        if let Some(path) = &args.out {
            anstream::eprintln!("saved the plan to `{}`", path.display());
        }
    }
    Ok(if args.detailed_exitcode && plan.summary.has_changes {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    })
}

/// A plan and what is needed to carry it out.
pub struct Computed {
    pub plan: Plan,
    pub engine: crate::config::resolve::Engine,
    /// The project root (where outrig.toml is).
    pub root: std::path::PathBuf,
    pub config_path: std::path::PathBuf,
    pub session_root: std::path::PathBuf,
    /// The resolved config the plan was made from.
    pub config: crate::config::Config,
}

/// Compute the plan for the config found from `cwd`.
pub fn compute(
    global: &GlobalArgs,
    target: Target<'_>,
    session_root: Option<&Path>,
    cwd: &Path,
) -> Result<Computed, Error> {
    let loaded = config::load(global.config.as_deref(), cwd)?;
    for warning in &loaded.warnings {
        if warning.code != "unset-variable" {
            anstream::eprintln!("{}", warning.render(&loaded.source, true));
        }
    }
    let config = &loaded.config;
    let mut engine = config.engine.clone();
    if let Some(program) = std::env::var_os("OUTRIG_PODMAN").filter(|p| !p.is_empty()) {
        engine.podman = program.to_string_lossy().into_owned();
    }
    let base = PodmanCommand::new(engine.podman.clone(), &engine.global_args);
    let env = |name: &str| std::env::var(name).ok();
    let inputs = Inputs {
        env: &env,
        rootless: rootless(),
        hash_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let desired = desired::desired(config, target, &inputs)?;
    let manifests = ManifestCache::new();
    for build in desired.images.values().filter_map(|i| i.build.as_ref()) {
        manifests.store(&build.context_hash, &build.context_manifest);
    }
    let observed = inspect::observe(&Runtime, &base, &desired.project_id)
        .map_err(|e| observe_error(e, &engine.podman))?;
    let root = session::root(session_root, config.session_root.as_deref());
    let records = session::records(&root, &desired.project_id);
    let live: BTreeSet<String> = records
        .iter()
        .filter(|r| r.owns_containers())
        .map(|r| r.id.clone())
        .collect();
    let last = records
        .iter()
        .find(|r| r.desired.is_some() && r.status != session::Status::Failed);
    let plan = diff::plan(&diff::Inputs {
        desired: &desired,
        observed: &observed,
        last_applied: last.and_then(|r| r.desired.as_ref().map(|d| (r.id.as_str(), d))),
        live_sessions: &live,
        engine: &engine,
        root: &config.root,
        config_text: &loaded.source.text,
        manifests: &|hash| manifests.load(hash),
    })?;
    Ok(Computed {
        plan,
        engine,
        root: config.root.clone(),
        config_path: config.path.clone(),
        session_root: root,
        config: loaded.config,
    })
}

/// Whether podman runs rootless: as a non-root user on this machine.
fn rootless() -> bool {
    // The effective uid, read from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid != "0"))
        })
        .unwrap_or(false)
}

fn observe_error(error: ObserveError, program: &str) -> Error {
    match error {
        ObserveError::Process(process) if process.not_found => Error::new(format!("podman (`{program}`) was not found"))
            .cause(process.to_string())
            .hint("install podman (`apt-get install podman`), or point `OUTRIG_PODMAN` or `[engine] podman` at it"),
        ObserveError::Process(process) => Error::new("podman could not report its images and containers")
            .cause(process.to_string())
            .hint("check that podman works: `podman info`; for a remote podman, check `[engine] global-args`"),
        ObserveError::Parse { command, error } => Error::new("podman's answer could not be read")
            .cause(format!("`{command}`: {error}"))
            .hint("outrig needs podman 4 or newer"),
    }
}
