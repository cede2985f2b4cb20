//! A saved plan against a fresh one: `outrig apply PLANFILE` runs the saved plan only if a
//! plan computed now from the config and podman's state equals it, and otherwise lists
//! what differs, resource by resource (`sandbox.tools: network.mode default → none`), the saved
//! value first.

use serde_json::Value as Json;

use super::{Address, Plan};

/// The saved plan, if a fresh plan equals it; otherwise an error naming what differs.
pub fn require_equal(
    path: &std::path::Path,
    saved: Plan,
    fresh: Plan,
) -> Result<Plan, crate::error::Error> {
    if saved.outrig_version != fresh.outrig_version {
        return Err(crate::error::Error::new(format!(
            "the plan `{}` was made by outrig {}, this is outrig {}",
            path.display(),
            saved.outrig_version,
            fresh.outrig_version
        ))
        .hint("run `outrig plan --out FILE` again with this outrig and review it"));
    }
    let differences = differences(&saved, &fresh);
    if differences.is_empty() {
        return Ok(saved);
    }
    const SHOWN: usize = 20;
    let mut error = crate::error::Error::new(format!(
        "the plan `{}` is not what would run now: {} difference{} (saved → now); nothing was started",
        path.display(),
        differences.len(),
        if differences.len() == 1 { "" } else { "s" }
    ));
    for difference in differences.iter().take(SHOWN) {
        error = error.cause(difference.clone());
    }
    if differences.len() > SHOWN {
        error = error.cause(format!("... and {} more", differences.len() - SHOWN));
    }
    Err(error.hint("run `outrig plan --out FILE` again and review it"))
}

/// How a saved plan differs from a fresh one; empty when they are equal.
pub fn differences(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if saved.project != fresh.project {
        out.push(format!(
            "project: `{}` → `{}`",
            saved.project, fresh.project
        ));
    }
    if saved.agent != fresh.agent {
        out.push(format!(
            "agent: {} → {}",
            shown(&serde_json::to_value(&saved.agent).unwrap_or_default()),
            shown(&serde_json::to_value(&fresh.agent).unwrap_or_default())
        ));
    }
    let old = &saved.desired;
    let new = &fresh.desired;
    let mut by_resource: Vec<(Address, Vec<String>)> = Vec::new();
    resources(
        &old.images,
        &new.images,
        Address::Image,
        &mut by_resource,
        image_changes,
    );
    resources(
        &old.sandboxes,
        &new.sandboxes,
        Address::Sandbox,
        &mut by_resource,
        sandbox_changes,
    );
    resources(
        &old.servers,
        &new.servers,
        |k| Address::server(&k),
        &mut by_resource,
        fields,
    );
    resources(
        &old.agents,
        &new.agents,
        Address::Agent,
        &mut by_resource,
        fields,
    );
    if old.project_id != new.project_id {
        out.push(format!(
            "project id: `{}` → `{}` (the project moved)",
            old.project_id, new.project_id
        ));
    }
    let described: Vec<Address> = by_resource.iter().map(|(a, _)| a.clone()).collect();
    for (address, changes) in by_resource {
        for change in changes {
            out.push(format!("{address}: {change}"));
        }
    }
    // Steps: what would run. A resource whose desired state differs is described above.
    let saved_steps: Vec<&super::Step> = saved.steps.iter().collect();
    for step in &saved_steps {
        match fresh.steps.iter().find(|s| s.address == step.address) {
            None => out.push(format!(
                "{}: in the saved plan, not in a fresh one",
                step.address
            )),
            Some(now) => {
                let before = json(step);
                let after = json(now);
                if before == after {
                    continue;
                }
                if !described.contains(&step.address) {
                    for change in fields(&before, &after) {
                        out.push(format!("{}: {change}", step.address));
                    }
                    continue;
                }
                // Its desired state differs (said above); say when what it runs differs
                // in more than that explains.
                let shown_before = before.get("operation").map(ToString::to_string);
                let shown_after = after.get("operation").map(ToString::to_string);
                if shown_before != shown_after && !operation_follows(&saved.desired, step) {
                    out.push(format!(
                        "{}: its planned podman command is not the one its desired state gives",
                        step.address
                    ));
                }
            }
        }
    }
    for step in &fresh.steps {
        if !saved.steps.iter().any(|s| s.address == step.address) {
            out.push(format!(
                "{}: in a fresh plan, not in the saved one ({})",
                step.address,
                step.action.name()
            ));
        }
    }
    if out.is_empty() && json(&saved.security_deltas) != json(&fresh.security_deltas) {
        out.push("the security section differs".into());
    }
    if out.is_empty() && saved.last_applied_session != fresh.last_applied_session {
        out.push(format!(
            "compared with: {} → {} (another session was applied since)",
            saved.last_applied_session.as_deref().unwrap_or("nothing"),
            fresh.last_applied_session.as_deref().unwrap_or("nothing")
        ));
    }
    if out.is_empty() && json(&saved.summary) != json(&fresh.summary) {
        out.push("the summary differs".into());
    }
    out
}

type Changes<T> = fn(&T, &T) -> Vec<String>;

/// Compared as they serialise: what a plan file holds is what counts (fields kept out of
/// the file, like a build context's manifest, play no part).
fn resources<T: serde::Serialize>(
    old: &std::collections::BTreeMap<String, T>,
    new: &std::collections::BTreeMap<String, T>,
    address: impl Fn(String) -> Address,
    out: &mut Vec<(Address, Vec<String>)>,
    changes: Changes<Json>,
) {
    for (name, before) in old {
        match new.get(name) {
            None => out.push((
                address(name.clone()),
                vec!["in the saved plan, not in a fresh one".into()],
            )),
            Some(after) => {
                let before = serde_json::to_value(before).unwrap_or_default();
                let after = serde_json::to_value(after).unwrap_or_default();
                if before != after {
                    out.push((address(name.clone()), changes(&before, &after)));
                }
            }
        }
    }
    for name in new.keys().filter(|n| !old.contains_key(*n)) {
        out.push((
            address(name.clone()),
            vec!["in a fresh plan, not in the saved one".into()],
        ));
    }
}

/// An image's changes, naming the input that changed since the plan was made.
fn image_changes(before: &Json, after: &Json) -> Vec<String> {
    let build = |v: &Json, key: &str| v.pointer(&format!("/build/{key}")).cloned();
    let mut out = Vec::new();
    for (key, what) in [
        ("containerfile_hash", "Containerfile"),
        ("context_hash", "build context"),
    ] {
        if build(before, key) != build(after, key) {
            out.push(format!("{what} changed since the plan was made"));
        }
    }
    if build(before, "args_hash") != build(after, "args_hash") {
        let mut args = Vec::new();
        walk(
            "build arguments",
            &build(before, "build_args").unwrap_or_default(),
            &build(after, "build_args").unwrap_or_default(),
            &mut args,
        );
        if args.is_empty() {
            args.push("build arguments changed since the plan was made".into());
        }
        out.extend(args);
    }
    if out.is_empty() {
        out = fields(before, after);
    }
    out
}

/// A sandbox's changes; its run-settings hash alone changes when its image does.
fn sandbox_changes(before: &Json, after: &Json) -> Vec<String> {
    let out = fields(before, after);
    if out.len() == 1 && out[0].starts_with("config_hash ") {
        return vec!["its image changed since the plan was made".into()];
    }
    out
}

/// Field-by-field changes between two JSON values (`network default → none`); secrets are
/// named by their variable when only their fingerprint changed. Derived hashes are left
/// out when another field explains them.
fn fields(before: &Json, after: &Json) -> Vec<String> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    if out.len() > 1 {
        out.retain(|line| !line.starts_with("config_hash "));
    }
    if out.is_empty() {
        out.push("differs".into());
    }
    out
}

fn walk(path: &str, before: &Json, after: &Json, out: &mut Vec<String>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Json::Object(a), Json::Object(b)) => {
            if let (Some(Json::String(_)), Some(Json::String(_))) =
                (a.get("fingerprint"), b.get("fingerprint"))
                && a.get("template") == b.get("template")
            {
                let name = path.rsplit('.').next().unwrap_or(path);
                out.push(format!("{name}: value changed since the plan was made"));
                return;
            }
            for (key, value) in a {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(&child, value, b.get(key).unwrap_or(&Json::Null), out);
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(&child, &Json::Null, value, out);
            }
        }
        (Json::Array(a), Json::Array(b)) => {
            let lines = |items: &[Json]| -> String {
                items.iter().map(|i| format!("{}\n", shown(i))).collect()
            };
            let (old, new) = (lines(a), lines(b));
            let diff = similar::TextDiff::from_lines(&old, &new);
            let mut removed = Vec::new();
            let mut added = Vec::new();
            for change in diff.iter_all_changes() {
                let text = format!("`{}`", change.value().trim_end());
                match change.tag() {
                    similar::ChangeTag::Delete => removed.push(text),
                    similar::ChangeTag::Insert => added.push(text),
                    similar::ChangeTag::Equal => {}
                }
            }
            let side = |items: Vec<String>| {
                if items.is_empty() {
                    "(nothing)".to_string()
                } else {
                    items.join(" ")
                }
            };
            out.push(format!("{path}: {} → {}", side(removed), side(added)));
        }
        _ => out.push(format!("{path} {} → {}", shown(before), shown(after))),
    }
}

/// A value as shown in a difference: strings bare, the rest as compact JSON, long values
/// cut.
fn shown(value: &Json) -> String {
    let text = match value {
        Json::Null => "(none)".to_string(),
        Json::String(text) => text.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Whether a step's operation is the one its own plan's desired state makes (an edited
/// operation is not).
fn operation_follows(desired: &super::Desired, step: &super::Step) -> bool {
    use super::Operation;
    let engine_of = |command: &crate::podman::command::Planned| crate::config::resolve::Engine {
        podman: command.program.clone(),
        global_args: command.global_args.clone(),
        proxy_image: crate::config::resolve::DEFAULT_PROXY_IMAGE.into(),
    };
    match (&step.operation, &step.address) {
        (
            Some(Operation::RunSandbox {
                command,
                image,
                container,
                watch,
            }),
            _,
        ) => {
            desired.run_command(&engine_of(command), image).as_ref() == Some(command)
                && desired.watch_command(&engine_of(watch), container.clone()) == *watch
        }
        (
            Some(Operation::StartServer {
                command,
                container,
                transport,
                ..
            }),
            Address::Server { image, server },
        ) => {
            *transport == desired.engine.transport()
                && desired
                    .exec_command(
                        &engine_of(command),
                        &format!("{image}.{server}"),
                        container.clone(),
                    )
                    .as_ref()
                    == Some(command)
        }
        // Builds depend on the project root, which the plan does not hold: compared by
        // their tag, which the image's desired state decides.
        (Some(Operation::Build { command, .. }), Address::Image(name)) => desired
            .images
            .get(name)
            .is_some_and(|i| command.args.contains(&i.reference.as_str().into())),
        _ => true,
    }
}

/// A value as the JSON it serialises to.
fn json<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).unwrap_or_default()
}
