//! The removal plan, as terraform's `plan -destroy`: what `outrig clean` and `outrig
//! destroy` remove, keep and write down, and why, from what podman lists and what the
//! session records say; and what a session's teardown removes. Pure data and pure
//! functions: nothing here runs podman or touches a record. Apply's `removal` module
//! carries a removal plan out, and [`super::render`] says it in words.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::podman::command::Planned;
use crate::podman::inspect::{ObservedContainer, ObservedImage, ObservedNetwork};
use crate::podman::labels;
use crate::podman::verbs::{LabelFilter, StopTime, Verb};
use crate::session::{EndReason, Status};

/// Version of the removal plan's JSON (`clean --json`, `destroy --json`).
pub const FORMAT_VERSION: u32 = 1;

/// What `clean` or `destroy` will do, in the order it does it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct RemovalPlan {
    pub format_version: u32,
    pub outrig_version: String,
    pub purpose: Purpose,
    pub scope: Scope,
    /// Where the session records are.
    pub session_root: PathBuf,
    pub steps: Vec<Step>,
}

/// Which command the plan is for, with its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Purpose {
    /// `outrig clean`: what sessions that are gone left behind, and records older than
    /// `older_than_secs`; with `images`, images nothing uses.
    Clean { older_than_secs: u64, images: bool },
    /// `outrig destroy`: every sandbox no running session owns.
    Destroy { force: bool },
}

/// Whose containers, networks, images and records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// One project: its name (images carry it) and its id (containers and networks do).
    Project { project: String, project_id: String },
    /// Every project's (`clean --all-projects`).
    AllProjects,
}

/// One operation and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Step {
    pub operation: Operation,
    pub reason: Reason,
}

/// What a removal does to one thing. Podman's things carry the exact command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// Left as it is; listed so the plan says why.
    KeepContainer { container: String },
    /// `podman rm`: a container and what runs in it.
    RemoveContainer {
        container: String,
        session: String,
        command: Planned,
    },
    /// `podman network rm`: a sandbox's internal network.
    RemoveNetwork {
        network: String,
        session: String,
        command: Planned,
    },
    /// `podman rmi` of a tagged image.
    RemoveImage {
        id: String,
        names: Vec<String>,
        command: Planned,
    },
    /// `podman image prune`: untagged build layers, in the order their parents allow.
    PruneLayers { untagged: usize, command: Planned },
    /// Write down what reading a record found: its process is gone (`status`, `end`).
    SettleRecord {
        session: String,
        status: Status,
        end: Option<EndReason>,
    },
    /// Delete a session's record and logs.
    RemoveRecord { session: String, status: Status },
    /// A kept session whose sandbox was removed: its record says finished, its containers
    /// removed. Done only when every one of its containers went.
    MarkDestroyed { session: String },
}

/// Why a step is what it is. Rendered to words by [`super::render`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reason {
    /// The session that made it no longer owns it: it ended, or its process is gone.
    SessionGone { session: String },
    /// The session ended longer ago than `--older-than`.
    OlderThan { age_secs: u64, limit_secs: u64 },
    /// The record says `running`, but its process is gone.
    ProcessGone,
    /// Neither the config nor a kept, running or recent session uses the image.
    ImageUnused,
    /// Build layers no tagged image needs.
    LayersUnused,
    /// `destroy`: the session is not running (kept, or its process is gone).
    NotRunning { session: String },
    /// The session that owns it is running.
    SessionRunning { session: String },
    /// `destroy` removes the session's sandbox.
    SandboxDestroyed,
    /// The session's own teardown.
    SessionEnded { session: String },
}

/// A session as removal sees it: its record, and whether its process lives (found by
/// whoever read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub id: String,
    /// As read: a dead process's `running` record already settled.
    pub status: Status,
    /// What the record says on disk.
    pub on_disk: Option<Status>,
    pub end: Option<EndReason>,
    /// Running in a live process (tearing down included), or kept.
    pub owns_containers: bool,
    /// When it ended (when it started, if it recorded no end); none when unreadable.
    pub ended_at: Option<jiff::Timestamp>,
    /// The images its containers ran and its plan used.
    pub images: BTreeSet<String>,
    /// The kept sandbox it serves from (`outrig mcp --attach`).
    pub attached_to: Option<String>,
}

/// What podman lists for the scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedNetwork>,
    /// The project's images (only listed for `clean --images`).
    pub images: Vec<ObservedImage>,
}

/// Everything a removal plan is made from.
pub struct Inputs<'a> {
    pub scope: &'a Scope,
    pub listed: &'a Listed,
    /// The scope's sessions in the session root.
    pub sessions: &'a [SessionState],
    /// Sessions recorded in other session roots (a container's session-dir label says
    /// where) that still own their containers.
    pub owners_elsewhere: &'a BTreeSet<String>,
    /// The images the config builds or runs now (`clean --images`).
    pub config_images: &'a BTreeSet<String>,
    /// podman with the engine's global arguments.
    pub podman: &'a Planned,
    pub session_root: &'a std::path::Path,
    pub now: jiff::Timestamp,
}

impl Inputs<'_> {
    fn session(&self, id: &str) -> Option<&SessionState> {
        self.sessions.iter().find(|s| s.id == id)
    }

    /// Whether session `id` still owns what carries its label.
    fn owns(&self, id: &str) -> bool {
        self.session(id).is_some_and(|s| s.owns_containers) || self.owners_elsewhere.contains(id)
    }

    fn age(&self, session: &SessionState) -> Option<u64> {
        let ended = session.ended_at?;
        Some(self.now.duration_since(ended).as_secs().max(0) as u64)
    }

    fn plan(&self, purpose: Purpose, steps: Vec<Step>) -> RemovalPlan {
        RemovalPlan {
            format_version: FORMAT_VERSION,
            outrig_version: env!("CARGO_PKG_VERSION").to_string(),
            purpose,
            scope: self.scope.clone(),
            session_root: self.session_root.to_path_buf(),
            steps,
        }
    }
}

fn session_label(labels_of: Option<&str>) -> String {
    labels_of.unwrap_or_default().to_string()
}

/// `outrig clean`: records a dead process left `running` written down; containers and
/// networks whose session is gone removed; records that ended longer ago than
/// `older_than_secs` removed; with `images`, the project's tagged images nothing uses, then
/// its untagged build layers. Running and kept sessions, and what they own, are never
/// touched.
pub fn clean(inputs: &Inputs, older_than_secs: u64, images: bool) -> RemovalPlan {
    let mut steps = Vec::new();
    for session in inputs.sessions {
        if session.on_disk == Some(Status::Running) && session.status != Status::Running {
            steps.push(Step {
                operation: Operation::SettleRecord {
                    session: session.id.clone(),
                    status: session.status,
                    end: session.end,
                },
                reason: Reason::ProcessGone,
            });
        }
    }
    let mut containers: Vec<&ObservedContainer> = inputs.listed.containers.iter().collect();
    containers.sort_by(|a, b| a.name().cmp(b.name()));
    for container in containers {
        let session = session_label(container.label(labels::SESSION));
        if inputs.owns(&session) {
            continue;
        }
        steps.push(remove_container(
            container.name(),
            &session,
            Reason::SessionGone {
                session: session.clone(),
            },
            inputs.podman,
        ));
    }
    for network in &inputs.listed.networks {
        let session = session_label(network.label(labels::SESSION));
        if inputs.owns(&session) {
            continue;
        }
        steps.push(remove_network(
            &network.name,
            &session,
            Reason::SessionGone {
                session: session.clone(),
            },
            inputs.podman,
        ));
    }
    let old = |session: &SessionState| {
        !session.owns_containers
            && session.status != Status::Running
            && inputs
                .age(session)
                .is_some_and(|age| age >= older_than_secs)
    };
    for session in inputs.sessions.iter().filter(|s| old(s)) {
        steps.push(Step {
            operation: Operation::RemoveRecord {
                session: session.id.clone(),
                status: session.status,
            },
            reason: Reason::OlderThan {
                age_secs: inputs.age(session).unwrap_or_default(),
                limit_secs: older_than_secs,
            },
        });
    }
    if images && let Scope::Project { project, .. } = inputs.scope {
        // In use: what the config builds or runs now, and what kept, running or recent
        // sessions ran.
        let mut used = inputs.config_images.clone();
        for session in inputs.sessions {
            let recent = inputs.age(session).is_some_and(|a| a < older_than_secs);
            if session.owns_containers || recent {
                used.extend(session.images.iter().cloned());
            }
        }
        let tagged = inputs.listed.images.iter().filter(|i| !i.names.is_empty());
        for image in tagged {
            if image.names.iter().any(|n| used.contains(n)) {
                continue;
            }
            steps.push(Step {
                operation: Operation::RemoveImage {
                    id: image.id.clone(),
                    names: image.names.clone(),
                    command: Verb::RemoveImage { id: &image.id }.planned(inputs.podman),
                },
                reason: Reason::ImageUnused,
            });
        }
        let untagged = inputs
            .listed
            .images
            .iter()
            .filter(|i| i.names.is_empty())
            .count();
        if untagged > 0 {
            let filter = LabelFilter::is(labels::PROJECT, project);
            steps.push(Step {
                operation: Operation::PruneLayers {
                    untagged,
                    command: Verb::PruneImages { filter }.planned(inputs.podman),
                },
                reason: Reason::LayersUnused,
            });
        }
    }
    inputs.plan(
        Purpose::Clean {
            older_than_secs,
            images,
        },
        steps,
    )
}

/// `outrig destroy`: every container and network of the project that no running session
/// owns (kept sandboxes, and what killed sessions left), and the kept sessions' records
/// marked finished. Refused, removing nothing, while a gateway serves from one of the
/// sandboxes (`outrig mcp --attach`), unless `force`.
pub fn destroy(inputs: &Inputs, force: bool) -> Result<RemovalPlan, Error> {
    let running = |id: &str| {
        inputs
            .session(id)
            .is_some_and(|s| s.status == Status::Running && s.owns_containers)
    };
    let attached: BTreeMap<&str, &str> = inputs
        .sessions
        .iter()
        .filter(|s| s.owns_containers)
        .filter_map(|s| Some((s.attached_to.as_deref()?, s.id.as_str())))
        .collect();
    let mut containers: Vec<&ObservedContainer> = inputs.listed.containers.iter().collect();
    containers.sort_by(|a, b| a.name().cmp(b.name()));
    if !force {
        let served: Vec<String> = containers
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
    let mut steps = Vec::new();
    let mut destroyed = BTreeSet::new();
    for container in containers {
        let session = session_label(container.label(labels::SESSION));
        if running(&session) {
            steps.push(Step {
                operation: Operation::KeepContainer {
                    container: container.name().to_string(),
                },
                reason: Reason::SessionRunning { session },
            });
            continue;
        }
        let reason = Reason::NotRunning {
            session: session.clone(),
        };
        steps.push(remove_container(
            container.name(),
            &session,
            reason,
            inputs.podman,
        ));
        destroyed.insert(session);
    }
    for network in &inputs.listed.networks {
        let session = session_label(network.label(labels::SESSION));
        if running(&session) {
            continue;
        }
        let reason = Reason::NotRunning {
            session: session.clone(),
        };
        steps.push(remove_network(
            &network.name,
            &session,
            reason,
            inputs.podman,
        ));
    }
    for session in destroyed {
        let kept = inputs
            .session(&session)
            .is_some_and(|s| s.status == Status::Kept);
        if kept {
            steps.push(Step {
                operation: Operation::MarkDestroyed { session },
                reason: Reason::SandboxDestroyed,
            });
        }
    }
    Ok(inputs.plan(Purpose::Destroy { force }, steps))
}

/// What a session's teardown removes, in order: its sandboxes, then their egress proxies
/// (the servers' way out stays until the servers are gone), then the networks, each
/// container given `stop` to end. `containers` are (record key, name); proxies' keys start
/// with `proxy.`.
pub fn teardown(
    session: &str,
    containers: &[(String, String)],
    networks: &[String],
    stop: StopTime,
    podman: &Planned,
) -> Vec<Vec<Step>> {
    let reason = || Reason::SessionEnded {
        session: session.to_string(),
    };
    let container = |name: &str| Step {
        operation: Operation::RemoveContainer {
            container: name.to_string(),
            session: session.to_string(),
            command: Verb::RemoveContainer { name, stop }.planned(podman),
        },
        reason: reason(),
    };
    let (proxies, sandboxes): (Vec<_>, Vec<_>) = containers
        .iter()
        .partition(|(key, _)| key.starts_with("proxy."));
    vec![
        sandboxes.iter().map(|(_, name)| container(name)).collect(),
        proxies.iter().map(|(_, name)| container(name)).collect(),
        networks
            .iter()
            .map(|network| remove_network(network, session, reason(), podman))
            .collect(),
    ]
}

fn remove_container(name: &str, session: &str, reason: Reason, podman: &Planned) -> Step {
    Step {
        operation: Operation::RemoveContainer {
            container: name.to_string(),
            session: session.to_string(),
            command: Verb::RemoveContainer {
                name,
                stop: StopTime::Now,
            }
            .planned(podman),
        },
        reason,
    }
}

fn remove_network(name: &str, session: &str, reason: Reason, podman: &Planned) -> Step {
    Step {
        operation: Operation::RemoveNetwork {
            network: name.to_string(),
            session: session.to_string(),
            command: Verb::RemoveNetwork { name }.planned(podman),
        },
        reason,
    }
}

/// How many of each a plan removes, for its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub containers: usize,
    pub records: usize,
    pub images: usize,
}

impl Counts {
    /// Count `step` (done, or to be done).
    pub fn add(&mut self, step: &Step) {
        match step.operation {
            Operation::RemoveContainer { .. } => self.containers += 1,
            Operation::RemoveRecord { .. } => self.records += 1,
            Operation::RemoveImage { .. } => self.images += 1,
            _ => {}
        }
    }
}

impl RemovalPlan {
    /// What the plan would remove.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for step in &self.steps {
            counts.add(step);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, session: &str) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{name}"),
            names: vec![name.to_string()],
            state: "running".into(),
            labels: [(labels::SESSION.to_string(), session.to_string())].into(),
            ..Default::default()
        }
    }

    fn network(name: &str, session: &str) -> ObservedNetwork {
        ObservedNetwork {
            name: name.to_string(),
            labels: Some([(labels::SESSION.to_string(), session.to_string())].into()),
        }
    }

    fn session(id: &str, status: Status, owns: bool, days_ago: i64) -> SessionState {
        SessionState {
            id: id.to_string(),
            status,
            on_disk: Some(status),
            end: None,
            owns_containers: owns,
            ended_at: Some(now() - jiff::SignedDuration::from_hours(24 * days_ago)),
            images: BTreeSet::new(),
            attached_to: None,
        }
    }

    fn now() -> jiff::Timestamp {
        "2026-12-03T00:00:00Z".parse().unwrap()
    }

    fn project() -> Scope {
        Scope::Project {
            project: "demo".into(),
            project_id: "demo-1".into(),
        }
    }

    struct World {
        scope: Scope,
        listed: Listed,
        sessions: Vec<SessionState>,
        elsewhere: BTreeSet<String>,
        config_images: BTreeSet<String>,
        podman: Planned,
    }

    impl World {
        fn new() -> World {
            World {
                scope: project(),
                listed: Listed::default(),
                sessions: Vec::new(),
                elsewhere: BTreeSet::new(),
                config_images: BTreeSet::new(),
                podman: Planned::new("podman", &["--url".to_string(), "unix:/s".to_string()]),
            }
        }

        fn inputs(&self) -> Inputs<'_> {
            Inputs {
                scope: &self.scope,
                listed: &self.listed,
                sessions: &self.sessions,
                owners_elsewhere: &self.elsewhere,
                config_images: &self.config_images,
                podman: &self.podman,
                session_root: std::path::Path::new("/sessions"),
                now: now(),
            }
        }
    }

    fn kinds(plan: &RemovalPlan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| match &s.operation {
                Operation::KeepContainer { container } => format!("keep {container}"),
                Operation::RemoveContainer { command, .. }
                | Operation::RemoveNetwork { command, .. }
                | Operation::RemoveImage { command, .. }
                | Operation::PruneLayers { command, .. } => command.shown_args().join(" "),
                Operation::SettleRecord {
                    session, status, ..
                } => {
                    format!("settle {session} {}", status.as_str())
                }
                Operation::RemoveRecord { session, .. } => format!("forget {session}"),
                Operation::MarkDestroyed { session } => format!("destroyed {session}"),
            })
            .collect()
    }

    #[test]
    fn clean_removes_what_sessions_that_are_gone_left_and_old_records() {
        let mut world = World::new();
        world.listed.containers = vec![
            container("c-live", "s-live"),
            container("c-gone", "s-gone"),
            container("c-elsewhere", "s-other-root"),
            container("c-unknown", "s-never-recorded"),
        ];
        world.listed.networks = vec![network("n-gone", "s-gone"), network("n-live", "s-live")];
        world.sessions = vec![
            session("s-live", Status::Running, true, 0),
            session("s-gone", Status::Finished, false, 40),
            session("s-kept", Status::Kept, true, 90),
            session("s-recent", Status::Failed, false, 2),
        ];
        let mut crashed = session("s-crashed", Status::Crashed, false, 31);
        crashed.on_disk = Some(Status::Running);
        world.sessions.push(crashed);
        world.elsewhere.insert("s-other-root".into());
        let plan = clean(&world.inputs(), 30 * 86_400, false);
        assert_eq!(
            kinds(&plan),
            [
                "settle s-crashed crashed",
                "rm --force --time 0 c-gone",
                "rm --force --time 0 c-unknown",
                "network rm --force n-gone",
                "forget s-gone",
                "forget s-crashed",
            ]
        );
        assert_eq!(
            plan.steps[4].reason,
            Reason::OlderThan {
                age_secs: 40 * 86_400,
                limit_secs: 30 * 86_400
            }
        );
        assert_eq!(
            plan.counts(),
            Counts {
                containers: 2,
                records: 2,
                images: 0
            }
        );
        // Every podman command goes to the project's engine.
        let Operation::RemoveContainer { command, .. } = &plan.steps[1].operation else {
            panic!("{:?}", plan.steps[1]);
        };
        assert_eq!(command.global_args, ["--url", "unix:/s"]);
    }

    #[test]
    fn clean_images_keeps_what_the_config_and_recent_sessions_use() {
        let mut world = World::new();
        let image = |id: &str, names: &[&str]| ObservedImage {
            id: id.to_string(),
            names: names.iter().map(|n| n.to_string()).collect(),
            labels: Default::default(),
        };
        world.listed.images = vec![
            image("i-now", &["localhost/outrig-tools:now"]),
            image("i-recent", &["localhost/outrig-tools:recent"]),
            image("i-kept", &["localhost/outrig-tools:kept"]),
            image("i-old", &["localhost/outrig-tools:old"]),
            image("i-layer", &[]),
        ];
        world
            .config_images
            .insert("localhost/outrig-tools:now".into());
        let mut recent = session("s-recent", Status::Finished, false, 1);
        recent.images.insert("localhost/outrig-tools:recent".into());
        let mut kept = session("s-kept", Status::Kept, true, 400);
        kept.images.insert("localhost/outrig-tools:kept".into());
        let mut old = session("s-old", Status::Finished, false, 400);
        old.images.insert("localhost/outrig-tools:old".into());
        world.sessions = vec![recent, kept, old];
        let plan = clean(&world.inputs(), 30 * 86_400, true);
        assert_eq!(
            kinds(&plan),
            [
                "forget s-old",
                "rmi i-old",
                "image prune --force --filter label=org.outrig.project=demo",
            ]
        );
        // Without --images, no image is looked at.
        let plan = clean(&world.inputs(), 30 * 86_400, false);
        assert_eq!(kinds(&plan), ["forget s-old"]);
        // An older-than of 0 makes every ended session old, and its images unused.
        let plan = clean(&world.inputs(), 0, true);
        assert!(kinds(&plan).contains(&"rmi i-recent".to_string()));
        assert!(!kinds(&plan).contains(&"rmi i-kept".to_string()));
    }

    #[test]
    fn clean_of_every_project_never_lists_images() {
        let mut world = World::new();
        world.scope = Scope::AllProjects;
        world.listed.images = vec![ObservedImage {
            id: "i".into(),
            ..Default::default()
        }];
        let plan = clean(&world.inputs(), 0, true);
        assert!(plan.steps.is_empty(), "{plan:?}");
    }

    #[test]
    fn destroy_keeps_running_sessions_and_marks_kept_ones() {
        let mut world = World::new();
        world.listed.containers = vec![
            container("c-kept", "s-kept"),
            container("c-kept-proxy", "s-kept"),
            container("c-running", "s-running"),
            container("c-orphan", "s-killed"),
        ];
        world.listed.networks = vec![
            network("n-kept", "s-kept"),
            network("n-running", "s-running"),
        ];
        world.sessions = vec![
            session("s-kept", Status::Kept, true, 1),
            session("s-running", Status::Running, true, 0),
            session("s-killed", Status::Crashed, false, 0),
        ];
        let plan = destroy(&world.inputs(), false).unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "rm --force --time 0 c-kept",
                "rm --force --time 0 c-kept-proxy",
                "rm --force --time 0 c-orphan",
                "keep c-running",
                "network rm --force n-kept",
                "destroyed s-kept",
            ]
        );
        assert_eq!(plan.counts().containers, 3);
    }

    #[test]
    fn destroy_refuses_a_sandbox_a_gateway_serves_from_unless_forced() {
        let mut world = World::new();
        world.listed.containers = vec![container("c-kept", "s-kept")];
        let mut gateway = session("s-gateway", Status::Running, true, 0);
        gateway.attached_to = Some("c-kept".into());
        world.sessions = vec![session("s-kept", Status::Kept, true, 1), gateway];
        let refused = destroy(&world.inputs(), false).unwrap_err();
        assert!(
            refused
                .render()
                .contains("c-kept (gateway session s-gateway)"),
            "{}",
            refused.render()
        );
        let forced = destroy(&world.inputs(), true).unwrap();
        assert_eq!(
            kinds(&forced),
            ["rm --force --time 0 c-kept", "destroyed s-kept"]
        );
    }

    #[test]
    fn a_teardown_removes_sandboxes_then_proxies_then_networks() {
        let podman = Planned::new("podman", &[]);
        let containers = [
            ("proxy.tools".to_string(), "s-tools-proxy".to_string()),
            ("tools".to_string(), "s-tools".to_string()),
        ];
        let phases = teardown(
            "s",
            &containers,
            &["s-tools-egress".to_string()],
            StopTime::Within(3),
            &podman,
        );
        let shown: Vec<Vec<String>> = phases
            .iter()
            .map(|steps| {
                steps
                    .iter()
                    .map(|s| match &s.operation {
                        Operation::RemoveContainer { command, .. }
                        | Operation::RemoveNetwork { command, .. } => {
                            command.shown_args().join(" ")
                        }
                        other => panic!("{other:?}"),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            shown,
            [
                vec!["rm --force --ignore --time 3 s-tools"],
                vec!["rm --force --ignore --time 3 s-tools-proxy"],
                vec!["network rm --force s-tools-egress"],
            ]
        );
    }

    #[test]
    fn the_plan_reads_back_from_its_json() {
        let mut world = World::new();
        world.listed.containers = vec![container("c-gone", "s-gone")];
        let plan = clean(&world.inputs(), 0, false);
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains(r#""command":"clean""#), "{json}");
        let back: RemovalPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
    }
}
