//! `outrig clean`: remove outrig containers (of any project) whose session is gone, and
//! session records that ended longer ago than `--older-than`. Never touches a running or
//! kept session.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{CleanArgs, GlobalArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::podman::inspect::ObservedContainer;
use crate::podman::{Podman, PodmanCommand, Runtime, labels};
use crate::session::{self, Status};

pub fn run(global: &GlobalArgs, args: &CleanArgs, env: Environment) -> Result<ExitStatus, Error> {
    let max_age = parse_age(&args.older_than).ok_or_else(|| {
        Error::new(format!("`--older-than {}` is not an age", args.older_than))
            .hint("for example `30d`, `12h` or `90m`")
    })?;
    let root = super::session_root(global, &args.root, &env);
    let program = env.podman_override().unwrap_or_else(|| "podman".into());
    let base = PodmanCommand::new(program, &[]);
    let listing = Podman
        .run(&base.clone().args([
            "ps",
            "--all",
            "--format",
            "json",
            "--filter",
            &format!("label={}", labels::SESSION),
        ]))
        .map_err(|e| e.error("podman could not list containers"))?;
    let containers: Vec<ObservedContainer> = if listing.stdout.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&listing.stdout)
            .map_err(|e| Error::new("podman's answer could not be read").cause(e.to_string()))?
    };
    let records: BTreeMap<String, session::Record> = session::ids(&root)
        .into_iter()
        .filter_map(|id| session::read(&root.join(&id)).ok().map(|r| (id, r)))
        .collect();
    let mut removed_containers = 0;
    for container in &containers {
        let id = container.label(labels::SESSION).unwrap_or_default();
        // The record may live in another session root; the container says where.
        let elsewhere = container
            .label(labels::SESSION_DIR)
            .and_then(|dir| session::read(Path::new(dir)).ok());
        let alive = records
            .get(id)
            .or(elsewhere.as_ref())
            .is_some_and(|r| r.owns_containers());
        if alive {
            continue;
        }
        if Podman
            .run(
                &base
                    .clone()
                    .args(["rm", "--force", "--time", "0", container.name()]),
            )
            .is_ok()
        {
            crate::output::status!(
                "  removed container {} (session {id} is gone)",
                container.name()
            );
            removed_containers += 1;
        }
    }
    let now = jiff::Timestamp::now();
    let mut removed_records = 0;
    for (id, record) in &records {
        if record.owns_containers() || record.status == Status::Running {
            continue;
        }
        let ended = record.ended_at.as_deref().unwrap_or(&record.started_at);
        let Ok(ended) = ended.parse::<jiff::Timestamp>() else {
            continue;
        };
        if now.duration_since(ended).as_secs() as u64 >= max_age
            && session::remove(&root, id).is_ok()
        {
            removed_records += 1;
        }
    }
    crate::output::status!(
        "removed {removed_containers} stray container(s) and {removed_records} session record(s)"
    );
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
