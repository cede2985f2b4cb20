//! `outrig destroy`: remove this project's sandboxes that no running session owns (kept
//! ones, and orphans of killed sessions), and mark kept sessions as ended.

use std::collections::BTreeSet;

use crate::cli::{DestroyArgs, GlobalArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::plan::desired::project_id;
use crate::podman::inspect;
use crate::podman::labels;
use crate::podman::verbs::{StopTime, Verb};
use crate::project::Project;
use crate::session::{self, Status};

pub fn run(global: &GlobalArgs, args: &DestroyArgs, env: Environment) -> Result<ExitStatus, Error> {
    let project = Project::load(
        global.config.as_deref(),
        env,
        args.root.session_root.as_deref(),
    )?;
    let config = project.config();
    let base = project.podman();
    let id = project_id(&config.project, &config.root);
    let observed = inspect::observe(&*project.runtime, &base, &id)
        .map_err(|e| crate::project::observe_error(e, &project.engine.podman))?;
    let root = &project.session_root;
    let records = session::records(root, &id);
    let running: BTreeSet<String> = records
        .iter()
        .filter(|r| r.status == Status::Running && r.owns_containers())
        .map(|r| r.id.clone())
        .collect();
    // Gateways serving from a kept sandbox (`outrig mcp --attach`), by container name.
    let attached: std::collections::BTreeMap<&str, &str> = records
        .iter()
        .filter(|r| r.owns_containers())
        .filter_map(|r| Some((r.attached_to.as_deref()?, r.id.as_str())))
        .collect();
    if !args.force {
        let served: Vec<String> = observed
            .containers
            .iter()
            .filter_map(|c| {
                let gateway = attached.get(c.name())?;
                Some(format!("{} (gateway session {gateway})", c.name()))
            })
            .collect();
        if !served.is_empty() {
            return Err(Error::new(format!(
                "{} sandbox(es) are serving an `outrig mcp --attach` gateway: {}; nothing was removed",
                served.len(),
                served.join(", ")
            ))
            .hint("stop the gateway (its client), or pass `--force` to remove the sandbox anyway"));
        }
    }
    let mut removed = 0;
    let mut sessions = BTreeSet::new();
    for container in &observed.containers {
        let session_id = container
            .label(labels::SESSION)
            .unwrap_or_default()
            .to_string();
        if running.contains(&session_id) {
            crate::output::status!(
                "  keeping {} (session {session_id} is running)",
                container.name()
            );
            continue;
        }
        project
            .runtime
            .run(
                &Verb::RemoveContainer {
                    name: container.name(),
                    stop: StopTime::Now,
                }
                .on(&base),
            )
            .map_err(|e| e.error(format!("cannot remove `{}`", container.name())))?;
        crate::output::status!("  removed {} (session {session_id})", container.name());
        removed += 1;
        sessions.insert(session_id);
    }
    // Their egress networks, once nothing is on them.
    for network in crate::podman::inspect::networks(&*project.runtime, &base, Some(&id))? {
        let session_id = network.label(labels::SESSION).unwrap_or_default();
        if running.contains(session_id) {
            continue;
        }
        project
            .runtime
            .run(
                &Verb::RemoveNetwork {
                    name: &network.name,
                }
                .on(&base),
            )
            .map_err(|e| e.error(format!("cannot remove network `{}`", network.name)))?;
        crate::output::status!("  removed network {} (session {session_id})", network.name);
    }
    for session_id in &sessions {
        session::mark_destroyed(root, session_id);
    }
    crate::output::status!(
        "destroyed {removed} sandbox(es) of project `{}`",
        config.project
    );
    Ok(ExitStatus::Success)
}
