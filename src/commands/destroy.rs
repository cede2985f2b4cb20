//! `outrig destroy`: remove this project's sandboxes that no running session owns (kept
//! ones, and orphans of killed sessions), and mark kept sessions as ended.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cli::{GlobalArgs, SessionRootArgs};
use crate::config;
use crate::error::{Error, ExitStatus};
use crate::plan::desired::project_id;
use crate::podman::inspect::{self, ObserveError};
use crate::podman::{PodmanCommand, Runtime, labels};
use crate::session::{self, Status};

pub fn run(global: &GlobalArgs, args: &SessionRootArgs, cwd: &Path) -> Result<ExitStatus, Error> {
    let loaded = config::load(global.config.as_deref(), cwd)?;
    let config = &loaded.config;
    let mut engine = config.engine.clone();
    if let Some(program) = std::env::var_os("OUTRIG_PODMAN").filter(|p| !p.is_empty()) {
        engine.podman = program.to_string_lossy().into_owned();
    }
    let base = PodmanCommand::new(engine.podman.clone(), &engine.global_args);
    let id = project_id(&config.project, &config.root);
    let observed = inspect::observe(&Runtime, &base, &id).map_err(|e| match e {
        ObserveError::Process(p) => {
            Error::new("podman could not list containers").cause(p.to_string())
        }
        ObserveError::Parse { command, error } => {
            Error::new("podman's answer could not be read").cause(format!("`{command}`: {error}"))
        }
    })?;
    let root = match &args.session_root {
        Some(root) => cwd.join(root),
        None => session::root(None, config.session_root.as_deref()),
    };
    let records = session::records(&root, &id);
    let running: BTreeSet<String> = records
        .iter()
        .filter(|r| r.status == Status::Running && r.owns_containers())
        .map(|r| r.id.clone())
        .collect();
    let mut removed = 0;
    let mut sessions = BTreeSet::new();
    for container in &observed.containers {
        let session_id = container
            .label(labels::SESSION)
            .unwrap_or_default()
            .to_string();
        if running.contains(&session_id) {
            anstream::eprintln!(
                "  keeping {} (session {session_id} is running)",
                container.name()
            );
            continue;
        }
        Runtime
            .run(
                &base
                    .clone()
                    .args(["rm", "--force", "--time", "0", container.name()]),
            )
            .map_err(|e| {
                Error::new(format!("cannot remove `{}`", container.name())).cause(e.to_string())
            })?;
        anstream::eprintln!("  removed {} (session {session_id})", container.name());
        removed += 1;
        sessions.insert(session_id);
    }
    for session_id in &sessions {
        session::mark_destroyed(&root, session_id);
    }
    anstream::eprintln!(
        "destroyed {removed} sandbox(es) of project `{}`",
        config.project
    );
    Ok(ExitStatus::Success)
}
