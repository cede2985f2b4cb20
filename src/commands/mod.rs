//! One file per subcommand: load what it needs, call the core, print the view.

pub mod apply;
pub mod clean;
pub mod completions;
pub mod destroy;
pub mod discard;
pub mod exec_server;
pub mod export;
pub mod init;
pub mod lock;
pub mod logs;
pub mod ls;
pub mod man;
pub mod mcp;
pub mod plan;
pub mod schema;
pub mod show;
pub mod validate;

use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, SessionRootArgs};
use crate::environment::Environment;
use crate::error::Error;
use crate::plan::Plan;

/// The session root for commands that read sessions: the flag, else the config's
/// `session-root` when a config is found (an invalid or missing one is not an error here),
/// else the default.
pub fn session_root(global: &GlobalArgs, args: &SessionRootArgs, env: &Environment) -> PathBuf {
    if let Some(root) = &args.session_root {
        return env.cwd.join(root);
    }
    let configured = crate::config::load(global.config.as_deref(), &env.cwd, &|name| {
        env.var(name).is_some()
    })
    .ok()
    .and_then(|loaded| loaded.config.session_root);
    crate::session::root(None, configured.as_deref(), &env.data_dir())
}

/// Largest plan file outrig reads.
pub const MAX_PLAN_SIZE: u64 = 16 * 1024 * 1024;

/// A plan saved with `outrig plan --out`, read with a cap and checked for its format.
pub fn read_plan(path: &Path) -> Result<Plan, Error> {
    let bytes = crate::fs::read_bounded(path, MAX_PLAN_SIZE).map_err(|e| {
        let error = Error::new(format!("cannot read the plan `{}`", path.display()));
        match e {
            crate::fs::ReadError::Io(e) => error.cause(e.to_string()),
            crate::fs::ReadError::TooLarge { limit } => error
                .cause(format!(
                    "it is larger than {} MiB, the most a plan may be",
                    limit >> 20
                ))
                .hint("save a plan with `outrig plan --out FILE`"),
        }
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(format!("`{}` is not an outrig plan", path.display()))
            .cause(e.to_string())
            .hint("save one with `outrig plan --out FILE`")
    })?;
    let version = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(crate::plan::FORMAT_VERSION)) {
        return Err(Error::new(format!(
            "the plan `{}` has format version {}, this outrig reads {}",
            path.display(),
            version.map_or("(none)".to_string(), |v| v.to_string()),
            crate::plan::FORMAT_VERSION
        ))
        .hint("make the plan again with this outrig: `outrig plan --out FILE`"));
    }
    serde_json::from_value(value).map_err(|e| {
        Error::new(format!("`{}` is not an outrig plan", path.display()))
            .cause(e.to_string())
            .hint("save one with `outrig plan --out FILE`")
    })
}

/// The exit status of a command whose apply ended with `result` (apply recorded the end
/// and the teardown in the session as they happened).
pub fn exit_status(result: &Result<(), crate::apply::Stop>) -> crate::error::ExitStatus {
    crate::apply::ending(result, false, crate::session::EndReason::Completed).exit
}

/// A tokio runtime for one command (two workers: the machines are small).
pub fn runtime() -> Result<tokio::runtime::Runtime, crate::error::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            crate::error::Error::new("cannot start the async runtime").cause(e.to_string())
        })
}

/// Show a removal plan (`json`: as JSON on stdout), and unless `dry_run` carry it out,
/// saying each step as it is done; what could not be removed is the error.
pub fn remove(
    sweep: &crate::project::sweep::Sweep,
    plan: &crate::plan::removal::RemovalPlan,
    dry_run: bool,
    json: bool,
) -> Result<crate::error::ExitStatus, Error> {
    use crate::apply::removal::Outcome;
    use crate::plan::render::removal::{Tense, failure, line, summary};
    if json {
        crate::output::stdout(&crate::plan::render::removal::json(plan));
    }
    if dry_run {
        for step in &plan.steps {
            if let Some(line) = line(step, Tense::Planned, None) {
                crate::output::status!("{line}");
            }
        }
        crate::output::status!("{}", summary(plan, plan.counts(), Tense::Planned));
        return Ok(crate::error::ExitStatus::Success);
    }
    let mut done = crate::plan::removal::Counts::default();
    let mut failures = Vec::new();
    sweep.carry_out(plan, &mut |step, outcome| match outcome {
        Outcome::Done { pruned } => {
            done.add(step);
            if let Some(line) = line(step, Tense::Done, *pruned) {
                crate::output::status!("{line}");
            }
        }
        Outcome::Kept => {
            if let Some(line) = line(step, Tense::Done, None) {
                crate::output::status!("{line}");
            }
        }
        Outcome::Skipped(why) | Outcome::Failed(why) => failures.push(failure(step, why)),
    });
    crate::output::status!("{}", summary(plan, done, Tense::Done));
    if failures.is_empty() {
        return Ok(crate::error::ExitStatus::Success);
    }
    let mut error = Error::new(format!("{} thing(s) could not be removed", failures.len()));
    for failure in failures {
        error = error.cause(failure);
    }
    Err(error.hint(
        "remove them with podman (`podman rm -f NAME`, `podman network rm NAME`, `podman rmi ID`) or run the command again",
    ))
}
