//! A removal plan in words: one line per step as `--dry-run` lists it or as it is done,
//! the summary line, and its JSON.

use crate::plan::removal::{Counts, Operation, Purpose, Reason, RemovalPlan, Scope, Step};

/// Whether a line says what would be done (a dry run) or what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tense {
    Planned,
    Done,
}

impl Tense {
    fn verb(self, planned: &'static str, done: &'static str) -> &'static str {
        match self {
            Tense::Planned => planned,
            Tense::Done => done,
        }
    }
}

/// The line for `step` (`pruned`: how many layers a prune removed), or none for a step
/// that is not said on its own.
pub fn line(step: &Step, tense: Tense, pruned: Option<usize>) -> Option<String> {
    let remove = tense.verb("would remove", "removed");
    let whose = |reason: &Reason| match reason {
        Reason::SessionGone { session } => format!(" (session {session} is gone)"),
        Reason::NotRunning { session } | Reason::SessionEnded { session } => {
            format!(" (session {session})")
        }
        _ => String::new(),
    };
    let text = match (&step.operation, &step.reason) {
        (Operation::KeepContainer { container }, Reason::SessionRunning { session }) => {
            format!("keeping {container} (session {session} is running)")
        }
        (Operation::KeepContainer { container }, _) => format!("keeping {container}"),
        (Operation::RemoveContainer { container, .. }, reason @ Reason::SessionGone { .. }) => {
            format!("{remove} container {container}{}", whose(reason))
        }
        (Operation::RemoveContainer { container, .. }, reason) => {
            format!("{remove} {container}{}", whose(reason))
        }
        (Operation::RemoveNetwork { network, .. }, reason) => {
            format!("{remove} network {network}{}", whose(reason))
        }
        (Operation::RemoveImage { names, .. }, _) => {
            format!("{remove} image {}", names.join(", "))
        }
        (Operation::PruneLayers { untagged, .. }, _) => match (tense, pruned) {
            (Tense::Done, Some(pruned)) => format!("pruned {pruned} untagged build layer(s)"),
            _ => format!("would prune the untagged build layers no image needs (of {untagged})"),
        },
        (
            Operation::SettleRecord {
                session,
                status,
                end,
            },
            _,
        ) => {
            let what = match (status, end) {
                (crate::session::Status::Crashed, _) => "crashed (its process is gone)".to_string(),
                (status, end) => format!(
                    "{} ({})",
                    status.as_str(),
                    end.map_or("its process is gone", |end| end.describe())
                ),
            };
            format!(
                "{} session {session} {what}",
                tense.verb("would mark", "marked")
            )
        }
        (Operation::RemoveRecord { session, status }, reason) => {
            let ended = match reason {
                Reason::OlderThan { age_secs, .. } => format!(", ended {} ago", age(*age_secs)),
                _ => String::new(),
            };
            format!(
                "{remove} session record {session} ({}{ended})",
                status.as_str()
            )
        }
        (Operation::MarkDestroyed { .. }, _) => return None,
    };
    Some(format!("  {text}"))
}

/// What could not be done for `step`, with why.
pub fn failure(step: &Step, why: &str) -> String {
    match &step.operation {
        Operation::KeepContainer { container } | Operation::RemoveContainer { container, .. } => {
            format!("container {container}: {why}")
        }
        Operation::RemoveNetwork { network, .. } => format!("network {network}: {why}"),
        Operation::RemoveImage { names, .. } => format!("image {}: {why}", names.join(", ")),
        Operation::PruneLayers { .. } => format!("pruning untagged layers: {why}"),
        Operation::SettleRecord { session, .. }
        | Operation::RemoveRecord { session, .. }
        | Operation::MarkDestroyed { session } => format!("session {session}: {why}"),
    }
}

/// The closing line: what was (or would be) removed, and from whom.
pub fn summary(plan: &RemovalPlan, counts: Counts, tense: Tense) -> String {
    let dry = match tense {
        Tense::Planned => " (dry run: nothing was removed)",
        Tense::Done => "",
    };
    let whose = match &plan.scope {
        Scope::Project { project, .. } => format!("of project `{project}`"),
        Scope::AllProjects => "of every project".to_string(),
    };
    match plan.purpose {
        Purpose::Clean { images, .. } => format!(
            "{} {} stray container(s), {} session record(s){} {whose}{dry}",
            tense.verb("would remove", "removed"),
            counts.containers,
            counts.records,
            if images {
                format!(" and {} image(s)", counts.images)
            } else {
                String::new()
            },
        ),
        Purpose::Destroy { .. } => format!(
            "{} {} sandbox(es) {whose}{dry}",
            tense.verb("would destroy", "destroyed"),
            counts.containers
        ),
    }
}

/// `3d`, `5h`, `12m`, `40s`: the largest whole unit.
fn age(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The plan as versioned JSON.
pub fn json(plan: &RemovalPlan) -> String {
    let mut text = serde_json::to_string_pretty(plan).expect("a removal plan serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::removal::{Purpose, Scope};
    use crate::podman::command::Planned;
    use crate::session::{EndReason, Status};

    fn plan(purpose: Purpose, steps: Vec<Step>) -> RemovalPlan {
        RemovalPlan {
            format_version: 1,
            outrig_version: "0".into(),
            purpose,
            scope: Scope::Project {
                project: "demo".into(),
                project_id: "demo-1".into(),
            },
            session_root: "/s".into(),
            steps,
        }
    }

    #[test]
    fn every_line_of_a_clean_in_both_tenses() {
        let command = Planned::new("podman", &[]);
        let steps = vec![
            Step {
                operation: Operation::SettleRecord {
                    session: "s1".into(),
                    status: Status::Crashed,
                    end: None,
                },
                reason: Reason::ProcessGone,
            },
            Step {
                operation: Operation::SettleRecord {
                    session: "s2".into(),
                    status: Status::Interrupted,
                    end: Some(EndReason::Killed),
                },
                reason: Reason::ProcessGone,
            },
            Step {
                operation: Operation::RemoveContainer {
                    container: "c".into(),
                    session: "s1".into(),
                    command: command.clone(),
                },
                reason: Reason::SessionGone {
                    session: "s1".into(),
                },
            },
            Step {
                operation: Operation::RemoveNetwork {
                    network: "n".into(),
                    session: "s1".into(),
                    command: command.clone(),
                },
                reason: Reason::SessionGone {
                    session: "s1".into(),
                },
            },
            Step {
                operation: Operation::RemoveRecord {
                    session: "s1".into(),
                    status: Status::Crashed,
                },
                reason: Reason::OlderThan {
                    age_secs: 40 * 86_400 + 5,
                    limit_secs: 30 * 86_400,
                },
            },
            Step {
                operation: Operation::RemoveImage {
                    id: "i".into(),
                    names: vec!["localhost/outrig-tools:old".into()],
                    command: command.clone(),
                },
                reason: Reason::ImageUnused,
            },
            Step {
                operation: Operation::PruneLayers {
                    untagged: 4,
                    command,
                },
                reason: Reason::LayersUnused,
            },
        ];
        let plan = plan(
            Purpose::Clean {
                older_than_secs: 30 * 86_400,
                images: true,
            },
            steps,
        );
        let lines = |tense| -> Vec<String> {
            plan.steps
                .iter()
                .filter_map(|s| line(s, tense, Some(3)))
                .chain([summary(&plan, plan.counts(), tense)])
                .collect()
        };
        assert_eq!(
            lines(Tense::Planned),
            [
                "  would mark session s1 crashed (its process is gone)",
                "  would mark session s2 interrupted (killed (SIGKILL) by its client or the system)",
                "  would remove container c (session s1 is gone)",
                "  would remove network n (session s1 is gone)",
                "  would remove session record s1 (crashed, ended 40d ago)",
                "  would remove image localhost/outrig-tools:old",
                "  would prune the untagged build layers no image needs (of 4)",
                "would remove 1 stray container(s), 1 session record(s) and 1 image(s) of project `demo` (dry run: nothing was removed)",
            ]
        );
        assert_eq!(
            lines(Tense::Done),
            [
                "  marked session s1 crashed (its process is gone)",
                "  marked session s2 interrupted (killed (SIGKILL) by its client or the system)",
                "  removed container c (session s1 is gone)",
                "  removed network n (session s1 is gone)",
                "  removed session record s1 (crashed, ended 40d ago)",
                "  removed image localhost/outrig-tools:old",
                "  pruned 3 untagged build layer(s)",
                "removed 1 stray container(s), 1 session record(s) and 1 image(s) of project `demo`",
            ]
        );
    }

    #[test]
    fn every_line_of_a_destroy() {
        let command = Planned::new("podman", &[]);
        let plan = plan(
            Purpose::Destroy { force: false },
            vec![
                Step {
                    operation: Operation::KeepContainer {
                        container: "c-run".into(),
                    },
                    reason: Reason::SessionRunning {
                        session: "s-run".into(),
                    },
                },
                Step {
                    operation: Operation::RemoveContainer {
                        container: "c".into(),
                        session: "s".into(),
                        command: command.clone(),
                    },
                    reason: Reason::NotRunning {
                        session: "s".into(),
                    },
                },
                Step {
                    operation: Operation::RemoveNetwork {
                        network: "n".into(),
                        session: "s".into(),
                        command,
                    },
                    reason: Reason::NotRunning {
                        session: "s".into(),
                    },
                },
                Step {
                    operation: Operation::MarkDestroyed {
                        session: "s".into(),
                    },
                    reason: Reason::SandboxDestroyed,
                },
            ],
        );
        let lines: Vec<String> = plan
            .steps
            .iter()
            .filter_map(|s| line(s, Tense::Done, None))
            .chain([
                summary(&plan, plan.counts(), Tense::Done),
                summary(&plan, plan.counts(), Tense::Planned),
            ])
            .collect();
        assert_eq!(
            lines,
            [
                "  keeping c-run (session s-run is running)",
                "  removed c (session s)",
                "  removed network n (session s)",
                "destroyed 1 sandbox(es) of project `demo`",
                "would destroy 1 sandbox(es) of project `demo` (dry run: nothing was removed)",
            ]
        );
    }
}
