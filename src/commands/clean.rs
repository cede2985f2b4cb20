//! `outrig clean`: remove this project's containers whose session is gone (`--all-projects`:
//! any project's), session records that ended longer ago than `--older-than`, and with
//! `--images` this project's images nothing uses any more. Never touches a running or kept
//! session. A record left `running` by a dead process is written down as `crashed` and
//! swept like a finished one. `--dry-run` lists all of it and removes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cli::{CleanArgs, GlobalArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::podman::inspect::{ObservedContainer, ObservedImage};
use crate::podman::verbs::{LabelFilter, StopTime, Verb, parse_list};
use crate::podman::{PodmanCommand, Runtime, labels};
use crate::project::Project;
use crate::session::{self, Status};

/// What `clean` acts on.
enum Scope {
    /// This project (its id), with its engine settings.
    Project(Box<Project>),
    /// Every project, with the default engine.
    All,
}

pub fn run(global: &GlobalArgs, args: &CleanArgs, env: Environment) -> Result<ExitStatus, Error> {
    let max_age = parse_age(&args.older_than).ok_or_else(|| {
        Error::new(format!("`--older-than {}` is not an age", args.older_than))
            .hint("for example `30d`, `12h` or `90m`")
    })?;
    let root = super::session_root(global, &args.root, &env);
    let scope = if args.all_projects {
        Scope::All
    } else {
        let project = Project::load(global.config.as_deref(), env.clone(), args.root.session_root.as_deref())
            .map_err(|e| {
                e.hint("`outrig clean` acts on the project whose outrig.toml it finds; pass `--all-projects` to clean every project's containers and records")
            })?;
        Scope::Project(Box::new(project))
    };
    let (runtime, base, project_id): (std::sync::Arc<dyn Runtime>, PodmanCommand, Option<String>) =
        match &scope {
            Scope::Project(project) => {
                let config = project.config();
                (
                    project.runtime.clone(),
                    project.podman(),
                    Some(crate::plan::desired::project_id(
                        &config.project,
                        &config.root,
                    )),
                )
            }
            Scope::All => (
                std::sync::Arc::new(crate::podman::Podman),
                PodmanCommand::new(
                    env.podman_override().unwrap_or_else(|| "podman".into()),
                    &[],
                ),
                None,
            ),
        };
    let doing = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut failures: Vec<String> = Vec::new();

    let filter = match &project_id {
        Some(id) => LabelFilter::is(labels::PROJECT_ID, id),
        None => LabelFilter::has(labels::SESSION),
    };
    let list = Verb::ListContainers { filter }.on(&base);
    let listing = runtime
        .run(&list)
        .map_err(|e| e.error("podman could not list containers"))?;
    let containers: Vec<ObservedContainer> =
        parse_list(&list.to_string(), &listing.stdout).map_err(|e| e.error("containers"))?;
    let mut records: BTreeMap<String, session::Record> = session::ids(&root)
        .into_iter()
        .filter_map(|id| session::read(&root.join(&id)).ok().map(|r| (id, r)))
        .filter(|(_, r)| project_id.as_ref().is_none_or(|p| &r.project_id == p))
        .collect();

    // Records a dead process left `running`: write down what reading them found.
    for (id, record) in &records {
        let on_disk = session::read_raw_status(&root.join(id));
        if on_disk != Some(Status::Running) || record.status == Status::Running {
            continue;
        }
        let what = match record.status {
            Status::Crashed => "crashed (its process is gone)".to_string(),
            status => format!(
                "{} ({})",
                status.as_str(),
                record
                    .end
                    .as_ref()
                    .map_or("its process is gone", |end| end.reason.describe())
            ),
        };
        if args.dry_run {
            crate::output::status!("  would mark session {id} {what}");
        } else if session::persist_settled(&root.join(id), record).is_ok() {
            crate::output::status!("  marked session {id} {what}");
        }
    }

    // Whether the session a container or network names still owns it; the record may
    // live in another session root, which its session-dir label says.
    let alive = |id: &str, dir: Option<&str>| {
        let elsewhere = dir.and_then(|dir| session::read(Path::new(dir)).ok());
        records
            .get(id)
            .or(elsewhere.as_ref())
            .is_some_and(|r| r.owns_containers())
    };
    let mut removed_containers = 0;
    for container in &containers {
        let id = container.label(labels::SESSION).unwrap_or_default();
        if alive(id, container.label(labels::SESSION_DIR)) {
            continue;
        }
        let removed = args.dry_run
            || runtime
                .run(
                    &Verb::RemoveContainer {
                        name: container.name(),
                        stop: StopTime::Now,
                    }
                    .on(&base),
                )
                .map_err(|e| failures.push(format!("container {}: {e}", container.name())))
                .is_ok();
        if removed {
            crate::output::status!(
                "  {doing} container {} (session {id} is gone)",
                container.name()
            );
            removed_containers += 1;
        }
    }

    // Egress networks whose session is gone (a killed outrig leaves its network).
    let networks = crate::podman::inspect::networks(&*runtime, &base, project_id.as_deref())?;
    for network in &networks {
        let id = network.label(labels::SESSION).unwrap_or_default();
        if alive(id, network.label(labels::SESSION_DIR)) {
            continue;
        }
        let removed = args.dry_run
            || runtime
                .run(
                    &Verb::RemoveNetwork {
                        name: &network.name,
                    }
                    .on(&base),
                )
                .map_err(|e| failures.push(format!("network {}: {e}", network.name)))
                .is_ok();
        if removed {
            crate::output::status!("  {doing} network {} (session {id} is gone)", network.name);
        }
    }

    let now = jiff::Timestamp::now();
    let age = |record: &session::Record| -> Option<u64> {
        let ended = record.ended_at.as_deref().unwrap_or(&record.started_at);
        let ended: jiff::Timestamp = ended.parse().ok()?;
        Some(now.duration_since(ended).as_secs().max(0) as u64)
    };
    let mut removed_records = 0;
    let mut swept: BTreeSet<String> = BTreeSet::new();
    for (id, record) in &records {
        if record.owns_containers() || record.status == Status::Running {
            continue;
        }
        if age(record).is_none_or(|a| a < max_age) {
            continue;
        }
        let removed = args.dry_run
            || session::remove(&root, id)
                .map_err(|e| failures.push(format!("session {id}: {e}")))
                .is_ok();
        if removed {
            crate::output::status!("  {doing} session record {id} ({:?})", record.status);
            removed_records += 1;
            swept.insert(id.clone());
        }
    }
    records.retain(|id, _| !swept.contains(id));

    let mut removed_images = 0;
    if args.images {
        let Scope::Project(project) = &scope else {
            unreachable!("clap refuses --images with --all-projects");
        };
        // In use: what the config builds or runs now, and what kept, running or recent
        // sessions ran.
        let mut used: BTreeSet<String> = BTreeSet::new();
        for name in project.config().images.keys() {
            let desired = project
                .desired(crate::plan::desired::Target::Image(name))
                .map_err(|e| {
                    Error::new("cannot tell which images the config uses, so none were removed")
                        .cause(e.message)
                        .hint("run `outrig plan` to see why the config cannot be planned")
                })?;
            used.extend(desired.images.values().map(|i| i.reference.clone()));
        }
        for record in records.values() {
            let keep = record.owns_containers() || age(record).is_some_and(|a| a < max_age);
            if !keep {
                continue;
            }
            used.extend(record.containers.values().map(|c| c.image.clone()));
            used.extend(record.images_used());
        }
        let project_name = &project.config().project;
        let list = Verb::ListImages {
            filter: Some(LabelFilter::is(labels::PROJECT, project_name)),
        }
        .on(&base);
        let listing = runtime
            .run(&list)
            .map_err(|e| e.error("podman could not list images"))?;
        let images: Vec<ObservedImage> =
            parse_list(&list.to_string(), &listing.stdout).map_err(|e| e.error("images"))?;
        // Tagged images one by one; the untagged layers builds leave behind are pruned
        // after, by podman, in the order their parents allow.
        let untagged = images.iter().filter(|i| i.names.is_empty()).count();
        for image in images.iter().filter(|i| !i.names.is_empty()) {
            let in_use = image.names.iter().any(|n| used.contains(n));
            if in_use {
                continue;
            }
            let name = image.names.join(", ");
            let removed = args.dry_run
                || runtime
                    .run(&base.clone().args(["rmi", &image.id]))
                    .map_err(|e| failures.push(format!("image {name}: {e}")))
                    .is_ok();
            if removed {
                crate::output::status!("  {doing} image {name}");
                removed_images += 1;
            }
        }
        if untagged > 0 {
            if args.dry_run {
                crate::output::status!(
                    "  would prune the untagged build layers no image needs (of {untagged})"
                );
            } else {
                match runtime.run(&base.clone().args([
                    "image",
                    "prune",
                    "--force",
                    "--filter",
                    &format!("label={}={project_name}", labels::PROJECT),
                ])) {
                    Ok(output) => {
                        let pruned = output
                            .stdout
                            .lines()
                            .filter(|l| !l.trim().is_empty())
                            .count();
                        crate::output::status!("  pruned {pruned} untagged build layer(s)");
                    }
                    Err(e) => failures.push(format!("pruning untagged layers: {e}")),
                }
            }
        }
    }

    let what = match &scope {
        Scope::Project(project) => format!("of project `{}`", project.config().project),
        Scope::All => "of every project".to_string(),
    };
    crate::output::status!(
        "{} {removed_containers} stray container(s), {removed_records} session record(s){} {what}{}",
        if args.dry_run {
            "would remove"
        } else {
            "removed"
        },
        if args.images {
            format!(" and {removed_images} image(s)")
        } else {
            String::new()
        },
        if args.dry_run {
            " (dry run: nothing was removed)"
        } else {
            ""
        }
    );
    if !failures.is_empty() {
        let mut error = Error::new(format!("{} thing(s) could not be removed", failures.len()));
        for failure in failures {
            error = error.cause(failure);
        }
        return Err(error.hint("remove them with podman (`podman rm -f NAME`, `podman rmi ID`) or run `outrig clean` again"));
    }
    Ok(ExitStatus::Success)
}

/// `30d`, `12h`, `90m`, `45s` → seconds.
fn parse_age(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::parse_age("30d"), Some(30 * 86_400));
        assert_eq!(super::parse_age("0s"), Some(0));
        assert_eq!(super::parse_age("5"), None);
        assert_eq!(super::parse_age("d"), None);
    }
}
