//! Carrying out a removal plan (`outrig clean`, `outrig destroy`), step by step, in its
//! order; and the two podman removals a session's teardown shares with it. What went is
//! told as it goes; a step that fails does not stop the others, and a kept session is
//! marked destroyed only when every one of its containers went.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::plan::removal::{Operation, RemovalPlan, Step};
use crate::podman::command::{Binding, Planned};
use crate::podman::verbs::Verb;
use crate::podman::{PodmanCommand, Runtime};
use crate::session;

/// What became of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (for a prune, how many layers went).
    Done {
        pruned: Option<usize>,
    },
    /// Kept, as planned.
    Kept,
    /// Not attempted, with why (what it depended on failed).
    Skipped(String),
    Failed(String),
}

/// Carry out `plan` with `runtime`, its records under `root`, telling `report` each
/// step's outcome as it comes.
pub fn carry_out(
    plan: &RemovalPlan,
    runtime: &dyn Runtime,
    root: &Path,
    report: &mut dyn FnMut(&Step, &Outcome),
) -> Vec<Outcome> {
    let mut failed_sessions: BTreeSet<&str> = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let outcome = match &step.operation {
            Operation::KeepContainer { .. } => Outcome::Kept,
            Operation::RemoveContainer {
                container,
                session,
                command,
            } => {
                let removed = container_commands(container, command)
                    .and_then(|(remove, exists)| remove_container(runtime, &remove, &exists));
                if removed.is_err() {
                    failed_sessions.insert(session);
                }
                done(removed, None)
            }
            Operation::RemoveNetwork {
                session, command, ..
            } => {
                let removed = bind(command).and_then(|remove| remove_network(runtime, &remove));
                if removed.is_err() {
                    failed_sessions.insert(session);
                }
                done(removed, None)
            }
            Operation::RemoveImage { command, .. } => done(run(runtime, command), None),
            Operation::PruneLayers { command, .. } => match run(runtime, command) {
                Ok(output) => Outcome::Done {
                    pruned: Some(
                        output
                            .stdout
                            .lines()
                            .filter(|l| !l.trim().is_empty())
                            .count(),
                    ),
                },
                Err(why) => Outcome::Failed(why),
            },
            Operation::SettleRecord { session, .. } => {
                let dir = root.join(session);
                let settled = session::read(&dir)
                    .and_then(|record| {
                        session::persist_settled(&dir, &record).map_err(|e| e.to_string())
                    })
                    .map(|_| String::new());
                done(settled, None)
            }
            Operation::RemoveRecord { session, .. } => done(
                session::remove(root, session)
                    .map(|_| String::new())
                    .map_err(|e| e.to_string()),
                None,
            ),
            Operation::MarkDestroyed { session } => {
                if failed_sessions.contains(session.as_str()) {
                    Outcome::Skipped("not every one of its containers was removed".into())
                } else {
                    session::mark_destroyed(root, session);
                    Outcome::Done { pruned: None }
                }
            }
        };
        report(step, &outcome);
        outcomes.push(outcome);
    }
    outcomes
}

fn done<T>(result: Result<T, String>, pruned: Option<usize>) -> Outcome {
    match result {
        Ok(_) => Outcome::Done { pruned },
        Err(why) => Outcome::Failed(why),
    }
}

/// Run a removal's command.
fn run(runtime: &dyn Runtime, command: &Planned) -> Result<crate::podman::runtime::Output, String> {
    let command = bind(command)?;
    runtime.run(&command).map_err(|e| e.to_string())
}

/// A removal's command: it has no session placeholders or secrets to fill.
pub(super) fn bind(command: &Planned) -> Result<PodmanCommand, String> {
    command.bind(&Binding::default()).map_err(|e| e.render())
}

/// The commands that remove `container` (`command`, bound) and tell whether it is gone
/// (`container exists` on the same engine).
pub(super) fn container_commands(
    container: &str,
    command: &Planned,
) -> Result<(PodmanCommand, PodmanCommand), String> {
    let base = PodmanCommand::new(command.program.clone(), &command.global_args);
    Ok((
        bind(command)?,
        Verb::ContainerExists { name: container }.on(&base),
    ))
}

/// Remove one container with `remove`, asking again while it is stopping on its own;
/// what counts is that it is gone (`exists` says so).
pub(super) fn remove_container(
    runtime: &dyn Runtime,
    remove: &PodmanCommand,
    exists: &PodmanCommand,
) -> Result<(), String> {
    let mut removed = runtime.run(remove).map(|_| ()).map_err(|e| e.to_string());
    // The sandbox may be stopping on its own (its watcher's pipe just closed), which
    // `podman rm` can trip over ("container state improper"): ask again.
    let mut attempt = 1;
    while let Err(why) = &removed {
        if already_gone(why) {
            removed = Ok(());
        } else if attempt < REMOVE_ATTEMPTS {
            attempt += 1;
            std::thread::sleep(Duration::from_millis(100));
            removed = runtime.run(remove).map(|_| ()).map_err(|e| e.to_string());
        } else {
            break;
        }
    }
    // An engine that failed to answer `rm` (a busy remote service) may have removed it
    // all the same.
    if removed.is_err() && matches!(runtime.run(exists), Err(e) if e.status == Some(1)) {
        return Ok(());
    }
    removed
}

/// Remove a network; one that is already gone counts as removed.
pub(super) fn remove_network(runtime: &dyn Runtime, remove: &PodmanCommand) -> Result<(), String> {
    match runtime.run(remove) {
        Err(e)
            if !e.stderr_tail.contains("network not found")
                && !e.stderr_tail.contains("unable to find network") =>
        {
            Err(e.to_string())
        }
        _ => Ok(()),
    }
}

/// How many times a container's removal is asked of podman.
const REMOVE_ATTEMPTS: usize = 3;

/// Whether `podman rm` failed only because the container went away meanwhile (its
/// watcher stopped it and `--rm` removed it first).
fn already_gone(why: &str) -> bool {
    ["no such container", "does not exist in database"]
        .iter()
        .any(|symptom| why.contains(symptom))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::plan::removal::{Inputs, Listed, Scope, SessionState, clean, destroy};
    use crate::podman::inspect::{ObservedContainer, ObservedNetwork};
    use crate::podman::labels;
    use crate::podman::recording::Recording;
    use crate::session::Status;

    fn container(name: &str, session: &str) -> ObservedContainer {
        ObservedContainer {
            id: name.to_string(),
            names: vec![name.to_string()],
            labels: [(labels::SESSION.to_string(), session.to_string())].into(),
            ..Default::default()
        }
    }

    /// A record on disk, as a session wrote it.
    fn write_record(root: &Path, id: &str, status: Status) -> SessionState {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(session::RECORD_FILE),
            serde_json::json!({"format_version": 2, "id": id, "project": "demo",
                "project_id": "demo-1", "status": status.as_str(),
                "started_at": "2020-01-01T00:00:00Z"})
            .to_string(),
        )
        .unwrap();
        SessionState {
            id: id.to_string(),
            status,
            on_disk: Some(status),
            end: None,
            owns_containers: status == Status::Kept,
            ended_at: Some("2020-01-01T00:00:00Z".parse().unwrap()),
            images: BTreeSet::new(),
            attached_to: None,
        }
    }

    fn inputs<'a>(
        listed: &'a Listed,
        sessions: &'a [SessionState],
        root: &'a Path,
        podman: &'a Planned,
    ) -> Inputs<'a> {
        static SCOPE: std::sync::LazyLock<Scope> = std::sync::LazyLock::new(|| Scope::Project {
            project: "demo".into(),
            project_id: "demo-1".into(),
        });
        static NONE: std::sync::LazyLock<BTreeSet<String>> =
            std::sync::LazyLock::new(BTreeSet::new);
        Inputs {
            scope: &SCOPE,
            listed,
            sessions,
            owners_elsewhere: &NONE,
            config_images: &NONE,
            podman,
            session_root: root,
            now: "2026-12-03T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_clean_runs_its_plan_and_goes_on_past_a_failure() {
        let root = tempfile::tempdir().unwrap();
        let old = write_record(root.path(), "20200101T000000-old", Status::Finished);
        let mut crashed = write_record(root.path(), "20200101T000000-dead", Status::Running);
        crashed.status = Status::Crashed;
        let listed = Listed {
            containers: vec![container("c-stuck", "gone"), container("c-gone", "gone")],
            networks: vec![ObservedNetwork {
                name: "n-gone".into(),
                labels: Some([(labels::SESSION.to_string(), "gone".to_string())].into()),
            }],
            images: Vec::new(),
        };
        let sessions = [old, crashed];
        let podman = Planned::new("podman", &[]);
        let plan = clean(
            &inputs(&listed, &sessions, root.path(), &podman),
            86_400,
            false,
        );
        let runtime = Recording::new().fail("c-stuck", "Error: device busy");
        let mut lines = Vec::new();
        let outcomes = carry_out(&plan, &runtime, root.path(), &mut |step, outcome| {
            lines.push(
                format!("{:?} {outcome:?}", step.operation)
                    .chars()
                    .take(40)
                    .collect::<String>(),
            );
        });
        assert_eq!(lines.len(), plan.steps.len());
        let calls: Vec<String> = runtime.calls().iter().map(|c| c.args.join(" ")).collect();
        assert_eq!(
            calls,
            [
                "rm --force --time 0 c-gone",
                "rm --force --time 0 c-stuck",
                "rm --force --time 0 c-stuck",
                "rm --force --time 0 c-stuck",
                "container exists c-stuck",
                "network rm --force n-gone",
            ]
        );
        let failed = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Failed(_)))
            .count();
        assert_eq!(failed, 1, "{outcomes:?}");
        // The records went after the containers, the crashed one written down first.
        assert!(!root.path().join("20200101T000000-old").exists());
        assert!(!root.path().join("20200101T000000-dead").exists());
    }

    #[test]
    fn a_destroy_marks_a_kept_session_only_when_its_sandbox_went() {
        let root = tempfile::tempdir().unwrap();
        let kept = write_record(root.path(), "s-kept", Status::Kept);
        let stuck = write_record(root.path(), "s-stuck", Status::Kept);
        let listed = Listed {
            containers: vec![
                container("c-kept", "s-kept"),
                container("c-stuck", "s-stuck"),
            ],
            ..Default::default()
        };
        let sessions = [kept, stuck];
        let podman = Planned::new("podman", &[]);
        let plan = destroy(&inputs(&listed, &sessions, root.path(), &podman), false).unwrap();
        let runtime = Recording::new().fail("c-stuck", "Error: device busy");
        let outcomes = carry_out(&plan, &runtime, root.path(), &mut |_, _| {});
        assert!(
            matches!(outcomes.last(), Some(Outcome::Skipped(_))),
            "{outcomes:?}"
        );
        let status = |id: &str| session::read_raw_status(&root.path().join(id));
        assert_eq!(status("s-kept"), Some(Status::Finished));
        assert_eq!(
            status("s-stuck"),
            Some(Status::Kept),
            "its sandbox is still there"
        );
    }

    #[test]
    fn a_container_or_network_already_gone_counts_as_removed() {
        let runtime = Recording::new()
            .fail("rm --force c", "Error: no such container c")
            .fail(
                "network rm",
                "Error: unable to find network with name or ID n",
            );
        let podman = PodmanCommand::new("podman", &[]);
        let rm = podman.clone().args(["rm", "--force", "c"]);
        let exists = podman.clone().args(["container", "exists", "c"]);
        assert_eq!(remove_container(&runtime, &rm, &exists), Ok(()));
        let network = podman.args(["network", "rm", "--force", "n"]);
        assert_eq!(remove_network(&runtime, &network), Ok(()));
    }
}
