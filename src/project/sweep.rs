//! What `outrig clean` and `outrig destroy` look at and act on: the engine, the session
//! root, whose containers, networks, images and records ([`Scope`]). [`Sweep::look`] asks
//! podman and reads the records; the removal plan is made from what it found
//! ([`crate::plan::removal`]), and [`Sweep::carry_out`] runs it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::apply::removal::Outcome;
use crate::environment::Environment;
use crate::error::Error;
use crate::plan::desired::{Target, project_id};
use crate::plan::removal::{Inputs, Listed, RemovalPlan, Scope, SessionState, Step};
use crate::podman::command::Planned;
use crate::podman::inspect::{ObservedContainer, ObservedImage};
use crate::podman::verbs::{LabelFilter, Verb, parse_list};
use crate::podman::{Podman, PodmanCommand, Runtime, labels};
use crate::session;

use super::Project;

/// Where and on whose things a removal acts.
pub struct Sweep {
    pub runtime: Arc<dyn Runtime>,
    /// podman with the engine's global arguments.
    pub podman: Planned,
    pub scope: Scope,
    pub root: PathBuf,
}

/// What [`Sweep::look`] found.
pub struct Found {
    pub listed: Listed,
    pub sessions: Vec<SessionState>,
    pub owners_elsewhere: BTreeSet<String>,
    /// The images the config builds or runs now (when images were looked at).
    pub config_images: BTreeSet<String>,
}

impl Sweep {
    /// This project's, with its engine and session root.
    pub fn project(project: &Project) -> Sweep {
        let config = project.config();
        Sweep {
            runtime: project.runtime.clone(),
            podman: Planned::new(project.engine.podman.clone(), &project.engine.global_args),
            scope: Scope::Project {
                project: config.project.clone(),
                project_id: project_id(&config.project, &config.root),
            },
            root: project.session_root.clone(),
        }
    }

    /// Every project's, with the default engine (`OUTRIG_PODMAN` applied).
    pub fn all_projects(env: &Environment, root: PathBuf) -> Sweep {
        Sweep {
            runtime: Arc::new(Podman),
            podman: Planned::new(
                env.podman_override().unwrap_or_else(|| "podman".into()),
                &[],
            ),
            scope: Scope::AllProjects,
            root,
        }
    }

    /// The removal plan's inputs from what was found, at `now`.
    pub fn inputs<'a>(&'a self, found: &'a Found, now: jiff::Timestamp) -> Inputs<'a> {
        Inputs {
            scope: &self.scope,
            listed: &found.listed,
            sessions: &found.sessions,
            owners_elsewhere: &found.owners_elsewhere,
            config_images: &found.config_images,
            podman: &self.podman,
            session_root: &self.root,
            now,
        }
    }

    fn base(&self) -> PodmanCommand {
        PodmanCommand::new(self.podman.program.clone(), &self.podman.global_args)
    }

    /// Ask podman for the scope's containers and networks (and with `images` the project's
    /// images, and which of them the config uses: `project` must be given), and read the
    /// scope's records.
    pub fn look(&self, images: Option<&Project>) -> Result<Found, Error> {
        let base = self.base();
        let project_id = match &self.scope {
            Scope::Project { project_id, .. } => Some(project_id.as_str()),
            Scope::AllProjects => None,
        };
        let filter = match project_id {
            Some(id) => LabelFilter::is(labels::PROJECT_ID, id),
            None => LabelFilter::has(labels::SESSION),
        };
        let list = Verb::ListContainers { filter }.on(&base);
        let listing = self
            .runtime
            .run(&list)
            .map_err(|e| e.error("podman could not list containers"))?;
        let containers: Vec<ObservedContainer> =
            parse_list(&list.to_string(), &listing.stdout).map_err(|e| e.error("containers"))?;
        let networks = crate::podman::inspect::networks(&*self.runtime, &base, project_id)?;
        let mut found = Found {
            listed: Listed {
                containers,
                networks,
                images: Vec::new(),
            },
            sessions: self.sessions(project_id),
            owners_elsewhere: BTreeSet::new(),
            config_images: BTreeSet::new(),
        };
        found.owners_elsewhere = owners_elsewhere(&found);
        if let (Some(project), Scope::Project { project: name, .. }) = (images, &self.scope) {
            found.config_images = config_images(project)?;
            let list = Verb::ListImages {
                filter: Some(LabelFilter::is(labels::PROJECT, name)),
            }
            .on(&base);
            let listing = self
                .runtime
                .run(&list)
                .map_err(|e| e.error("podman could not list images"))?;
            let images: Vec<ObservedImage> =
                parse_list(&list.to_string(), &listing.stdout).map_err(|e| e.error("images"))?;
            found.listed.images = images;
        }
        Ok(found)
    }

    /// The scope's records in the session root, as removal sees them.
    fn sessions(&self, project_id: Option<&str>) -> Vec<SessionState> {
        session::ids(&self.root)
            .into_iter()
            .filter_map(|id| {
                let dir = self.root.join(&id);
                let record = session::read(&dir).ok()?;
                if project_id.is_some_and(|p| record.project_id != p) {
                    return None;
                }
                Some(state(&dir, id, &record))
            })
            .collect()
    }

    /// Carry out `plan`, telling `report` each step's outcome.
    pub fn carry_out(
        &self,
        plan: &RemovalPlan,
        report: &mut dyn FnMut(&Step, &Outcome),
    ) -> Vec<Outcome> {
        crate::apply::removal::carry_out(plan, &*self.runtime, &self.root, report)
    }
}

/// A record as removal sees it (`dir` is where it is).
fn state(dir: &Path, id: String, record: &session::Record) -> SessionState {
    let ended = record.ended_at.as_deref().unwrap_or(&record.started_at);
    let mut images: BTreeSet<String> = record.images_used().into_iter().collect();
    images.extend(record.containers.values().map(|c| c.image.clone()));
    SessionState {
        id,
        status: record.status,
        on_disk: session::read_raw_status(dir),
        end: record.end.as_ref().map(|end| end.reason),
        owns_containers: record.owns_containers(),
        ended_at: ended.parse().ok(),
        images,
        attached_to: record.attached_to.clone(),
    }
}

/// Sessions recorded in other session roots (their containers' and networks' session-dir
/// label says where) that still own what they made.
fn owners_elsewhere(found: &Found) -> BTreeSet<String> {
    let labelled = found
        .listed
        .containers
        .iter()
        .map(|c| (c.label(labels::SESSION), c.label(labels::SESSION_DIR)))
        .chain(
            found
                .listed
                .networks
                .iter()
                .map(|n| (n.label(labels::SESSION), n.label(labels::SESSION_DIR))),
        );
    let mut owners = BTreeSet::new();
    for (id, dir) in labelled {
        let (Some(id), Some(dir)) = (id, dir) else {
            continue;
        };
        if found.sessions.iter().any(|s| s.id == id) || owners.contains(id) {
            continue;
        }
        if session::read(Path::new(dir)).is_ok_and(|r| r.owns_containers()) {
            owners.insert(id.to_string());
        }
    }
    owners
}

/// The images the project's config builds or runs now.
fn config_images(project: &Project) -> Result<BTreeSet<String>, Error> {
    let mut used = BTreeSet::new();
    for name in project.config().images.keys() {
        let desired = project.desired(Target::Image(name)).map_err(|e| {
            Error::new("cannot tell which images the config uses, so none were removed")
                .cause(e.message)
                .hint("run `outrig plan` to see why the config cannot be planned")
        })?;
        used.extend(desired.images.values().map(|i| i.reference.clone()));
    }
    Ok(used)
}
