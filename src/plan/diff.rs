//! The pure plan function: desired state × observed podman state × last applied session
//! → steps, reasons, commands, diffs and security deltas. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use similar::TextDiff;

use super::desired::{
    AgentSpec, Desired, ImageSpec, SandboxSpec, ServerSpec, Value, container_name, short_hash,
};
use super::{Action, Direction, FORMAT_VERSION, Plan, SecurityDelta, Step, Summary};
use crate::config::model::{Access, NetworkMode, PullPolicy};
use crate::config::resolve::Engine;
use crate::error::Error;
use crate::podman::inspect::{Observed, ObservedImage};
use crate::podman::{PodmanCommand, labels};

/// Placeholder for the session id in planned commands.
pub const SESSION_PLACEHOLDER: &str = "<session>";

/// Everything the plan function looks at.
pub struct Inputs<'a> {
    pub desired: &'a Desired,
    pub observed: &'a Observed,
    /// The last applied session: its id and desired state.
    pub last_applied: Option<(&'a str, &'a Desired)>,
    /// Sessions that still own their containers (running or kept).
    pub live_sessions: &'a BTreeSet<String>,
    pub engine: &'a Engine,
    pub root: &'a Path,
    /// The config file's bytes, for the config digest.
    pub config_text: &'a str,
    /// The manifest of an earlier build context by its hash, if cached.
    pub manifests: &'a dyn Fn(&str) -> Option<BTreeMap<String, String>>,
}

/// Compute the plan.
pub fn plan(inputs: &Inputs) -> Result<Plan, Error> {
    let desired = inputs.desired;
    let last = inputs.last_applied.map(|(_, d)| d);
    let mut steps = Vec::new();
    let mut summary = Summary::default();
    let base = PodmanCommand::new(inputs.engine.podman.clone(), &inputs.engine.global_args);

    for image in desired.images.values() {
        let step = image_step(image, inputs, last, &base)?;
        if matches!(step.action, Action::Create | Action::Replace) {
            summary.to_build += 1;
        }
        steps.push(step);
    }
    for (name, sandbox) in &desired.sandboxes {
        let old = last.and_then(|l| l.sandboxes.get(name));
        let command = desired.run_command(inputs.engine, name, SESSION_PLACEHOLDER);
        let (action, reason, diff) = match (last, old) {
            (_, Some(old)) if old.config_hash == sandbox.config_hash => (
                Action::Create,
                "starts for the session; run settings unchanged".to_string(),
                None,
            ),
            (_, Some(old)) => (
                Action::Update,
                format!(
                    "run settings changed: {}",
                    sandbox_changes(old, sandbox).join(", ")
                ),
                unified(
                    &args_text(
                        last.and_then(|l| l.run_command(inputs.engine, name, SESSION_PLACEHOLDER)),
                    ),
                    &args_text(command.clone()),
                    "run (last applied)",
                    "run (planned)",
                ),
            ),
            (Some(_), None) => (Action::Create, "new sandbox".to_string(), None),
            (None, None) => (Action::Create, "starts for the session".to_string(), None),
        };
        summary.to_start += 1;
        steps.push(Step {
            address: format!("sandbox.{name}"),
            action,
            reason,
            command: command.map(|c| c.to_string()),
            diff,
        });
    }
    for (key, server) in &desired.servers {
        let old = last.and_then(|l| l.servers.get(key));
        let container = container_name(&desired.project, &server.image, SESSION_PLACEHOLDER);
        let command = desired.exec_command(inputs.engine, key, &container);
        let (action, reason, diff) = match (last, old) {
            (_, Some(old)) if old == server => (
                Action::Create,
                "starts for the session; unchanged".to_string(),
                None,
            ),
            (_, Some(old)) => (
                Action::Update,
                format!("{} changed", server_changes(old, server).join(", ")),
                unified(
                    &args_text(last.and_then(|l| {
                        let container = container_name(&l.project, &old.image, SESSION_PLACEHOLDER);
                        l.exec_command(inputs.engine, key, &container)
                    })),
                    &args_text(command.clone()),
                    "exec (last applied)",
                    "exec (planned)",
                ),
            ),
            (Some(_), None) => (Action::Create, "new server".to_string(), None),
            (None, None) => (Action::Create, "starts for the session".to_string(), None),
        };
        summary.servers += 1;
        steps.push(Step {
            address: format!("mcp.{key}"),
            action,
            reason,
            command: command.map(|c| c.to_string()),
            diff,
        });
    }
    for (name, agent) in &desired.agents {
        let old = last.and_then(|l| l.agents.get(name));
        let (action, reason) = match (last, old) {
            (_, Some(old)) if old == agent => {
                (Action::Create, "runs in the session; unchanged".to_string())
            }
            (_, Some(old)) => (
                Action::Update,
                format!("{} changed", agent_changes(old, agent).join(", ")),
            ),
            (Some(_), None) => (Action::Create, "new agent".to_string()),
            (None, None) => (Action::Create, "runs in the session".to_string()),
        };
        steps.push(Step {
            address: format!("agent.{name}"),
            action,
            reason: format!(
                "{reason} (model `{}` at `{}`)",
                agent.identifier, agent.base_url
            ),
            command: None,
            diff: None,
        });
    }
    let mut containers = inputs.observed.containers.clone();
    containers.sort_by(|a, b| a.name().cmp(b.name()));
    for container in &containers {
        let session = container.label(labels::SESSION).unwrap_or("unknown");
        let address = format!("container.{}", container.name());
        if inputs.live_sessions.contains(session) {
            steps.push(Step {
                address,
                action: Action::NoOp,
                reason: format!(
                    "belongs to session {session}, which is running or kept ({})",
                    container.state
                ),
                command: None,
                diff: None,
            });
        } else {
            summary.to_remove += 1;
            steps.push(Step {
                address,
                action: Action::Remove,
                reason: format!(
                    "orphaned container from session {session} ({})",
                    container.state
                ),
                command: Some(
                    base.clone()
                        .args(["rm", "--force", "--time", "0", container.name()])
                        .to_string(),
                ),
                diff: None,
            });
        }
    }
    summary.changed = steps.iter().filter(|s| s.action == Action::Update).count()
        + match last {
            // Against a last applied session, new resources are changes.
            Some(_) => steps
                .iter()
                .filter(|s| s.action == Action::Create && (s.reason.starts_with("new ")))
                .count(),
            // With none, everything that runs is new.
            None => summary.to_start + summary.servers + desired.agents.len(),
        };
    summary.has_changes = summary.to_build > 0 || summary.to_remove > 0 || summary.changed > 0;
    let security_deltas = security_deltas(last, desired);
    Ok(Plan {
        format_version: FORMAT_VERSION,
        outrig_version: env!("CARGO_PKG_VERSION").to_string(),
        project: desired.project.clone(),
        agent: desired.agent.clone(),
        config_digest: config_digest(inputs.config_text, desired),
        observed_fingerprint: observed_fingerprint(inputs.observed, desired),
        last_applied_session: inputs.last_applied.map(|(id, _)| id.to_string()),
        steps,
        security_deltas,
        summary,
        desired: desired.clone(),
    })
}

fn image_step(
    image: &ImageSpec,
    inputs: &Inputs,
    last: Option<&Desired>,
    base: &PodmanCommand,
) -> Result<Step, Error> {
    let address = format!("image.{}", image.name);
    let present = inputs
        .observed
        .images
        .iter()
        .any(|o| has_reference(o, &image.reference));
    let Some(build) = &image.build else {
        return match (present, image.pull) {
            (true, PullPolicy::Always) => Ok(Step {
                address,
                action: Action::Create,
                reason: "`pull = \"always\"`: check the registry for a newer image".into(),
                command: Some(base.clone().args(["pull", &image.reference]).to_string()),
                diff: None,
            }),
            (true, _) => Ok(Step {
                address,
                action: Action::NoOp,
                reason: format!("`{}` exists locally", image.reference),
                command: None,
                diff: None,
            }),
            (false, PullPolicy::Never) => Err(Error::new(format!(
                "image `{}` uses `{}`, which does not exist locally",
                image.name, image.reference
            ))
            .hint("build or load it first, or set `pull = \"missing\"` to let podman fetch it")),
            (false, _) => Ok(Step {
                address,
                action: Action::Create,
                reason: "image missing locally: pull it".into(),
                command: Some(base.clone().args(["pull", &image.reference]).to_string()),
                diff: None,
            }),
        };
    };
    let command = inputs
        .desired
        .build_command(inputs.engine, inputs.root, image)
        .map(|c| c.to_string());
    if present {
        return Ok(Step {
            address,
            action: Action::NoOp,
            reason: format!("up to date (`{}`)", image.reference),
            command: None,
            diff: None,
        });
    }
    // An earlier build of this image for this project, newest label set first.
    let earlier: Option<&ObservedImage> = inputs.observed.images.iter().find(|o| {
        o.labels.get(labels::IMAGE).map(String::as_str) == Some(image.name.as_str())
            && o.labels.get(labels::PROJECT).map(String::as_str)
                == Some(inputs.desired.project.as_str())
    });
    let Some(earlier) = earlier else {
        return Ok(Step {
            address,
            action: Action::Create,
            reason: "image missing: build it".into(),
            command,
            diff: None,
        });
    };
    let mut changed = Vec::new();
    let mut diff = String::new();
    let old_build = last
        .and_then(|l| l.images.get(&image.name))
        .and_then(|i| i.build.as_ref());
    if earlier.labels.get(labels::CONTAINERFILE_HASH) != Some(&build.containerfile_hash) {
        changed.push("Containerfile changed".to_string());
        if let Some(old) = old_build.filter(|o| o.containerfile_hash != build.containerfile_hash) {
            diff.push_str(
                &unified(
                    &old.containerfile_text,
                    &build.containerfile_text,
                    &old.containerfile,
                    &build.containerfile,
                )
                .unwrap_or_default(),
            );
        }
    }
    if let Some(earlier_context) = earlier.labels.get(labels::CONTEXT_HASH)
        && earlier_context != &build.context_hash
    {
        let files = (inputs.manifests)(earlier_context)
            .map(|old| super::context::changed_paths(&old, &build.context_manifest))
            .unwrap_or_default();
        changed.push(match files.len() {
            0 => format!("build context `{}` changed", build.context),
            1..=5 => format!(
                "build context changed: {}",
                files
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            n => format!("build context changed: {n} files, first `{}`", files[0]),
        });
    }
    if earlier.labels.get(labels::ARGS_HASH) != Some(&build.args_hash) {
        changed.push("build arguments changed".to_string());
        if let Some(old) = old_build.filter(|o| o.args_hash != build.args_hash) {
            diff.push_str(
                &unified(
                    &args_list(old),
                    &args_list(build),
                    "build args (last applied)",
                    "build args (planned)",
                )
                .unwrap_or_default(),
            );
        }
    }
    if changed.is_empty() {
        changed.push("inputs changed".to_string());
    }
    Ok(Step {
        address,
        action: Action::Replace,
        reason: format!(
            "{} (replaces `{}`)",
            changed.join("; "),
            earlier
                .names
                .first()
                .map_or(earlier.id.as_str(), String::as_str)
        ),
        command,
        diff: (!diff.is_empty()).then_some(diff),
    })
}

fn args_list(build: &super::desired::BuildSpec) -> String {
    let mut out = String::new();
    for (name, value) in &build.build_args {
        out.push_str(&format!("{name}={}\n", value.shown()));
    }
    if let Some(target) = &build.target {
        out.push_str(&format!("--target {target}\n"));
    }
    out
}

/// Whether an observed image carries `reference` (short names match as podman resolves
/// them: `localhost/` and `docker.io/library/` prefixes, `:latest` by default).
pub fn has_reference(image: &ObservedImage, reference: &str) -> bool {
    let with_tag = if reference
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'))
    {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    };
    image.names.iter().any(|name| {
        name == &with_tag
            || name == &format!("localhost/{with_tag}")
            || name == &format!("docker.io/library/{with_tag}")
            || name == &format!("docker.io/{with_tag}")
    }) || image
        .id
        .starts_with(reference.trim_start_matches("sha256:"))
        && reference.len() >= 12
}

/// An argument list one per line, for diffs.
fn args_text(command: Option<PodmanCommand>) -> String {
    command
        .map(|c| {
            c.args
                .iter()
                .map(|a| format!("{}\n", crate::podman::command::shell_quote(a)))
                .collect()
        })
        .unwrap_or_default()
}

fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> Option<String> {
    if old == new {
        return None;
    }
    Some(
        TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(2)
            .header(old_name, new_name)
            .to_string(),
    )
}

fn sandbox_changes(old: &SandboxSpec, new: &SandboxSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.network != new.network {
        out.push("network");
    }
    if old.workspace_host != new.workspace_host
        || old.workspace_mount != new.workspace_mount
        || old.workspace_access != new.workspace_access
    {
        out.push("workspace");
    }
    if old.mounts != new.mounts || old.tmpfs != new.tmpfs {
        out.push("mounts");
    }
    if old.cap_add != new.cap_add || old.cap_drop != new.cap_drop {
        out.push("capabilities");
    }
    if old.no_new_privileges != new.no_new_privileges
        || old.read_only != new.read_only
        || old.rootless != new.rootless
    {
        out.push("security options");
    }
    if old.pids_limit != new.pids_limit || old.memory != new.memory || old.cpus != new.cpus {
        out.push("limits");
    }
    if old.image != new.image {
        out.push("image");
    }
    if out.is_empty() {
        out.push("settings");
    }
    out
}

fn server_changes(old: &ServerSpec, new: &ServerSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.command != new.command {
        out.push("command");
    }
    if old.env != new.env {
        out.push("environment");
    }
    if old.workdir != new.workdir {
        out.push("working directory");
    }
    if old.startup_timeout_ms != new.startup_timeout_ms
        || old.call_timeout_ms != new.call_timeout_ms
        || old.result_max_bytes != new.result_max_bytes
    {
        out.push("limits");
    }
    if out.is_empty() {
        out.push("settings");
    }
    out
}

fn agent_changes(old: &AgentSpec, new: &AgentSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.identifier != new.identifier || old.model != new.model {
        out.push("model");
    }
    if old.provider != new.provider || old.base_url != new.base_url || old.api_key != new.api_key {
        out.push("provider");
    }
    if old.tools != new.tools {
        out.push("tool allow-list");
    }
    if old.image != new.image {
        out.push("image");
    }
    if old.tool_call_max != new.tool_call_max || old.tool_result_max != new.tool_result_max {
        out.push("limits");
    }
    if out.is_empty() {
        out.push("settings");
    }
    out
}

/// What the sandbox may do now that it could not before (or no longer can), against the
/// last applied session, or against nothing on a first plan.
pub fn security_deltas(last: Option<&Desired>, new: &Desired) -> Vec<SecurityDelta> {
    let mut out = Vec::new();
    let mut push = |address: &str, kind: &str, direction: Direction, message: String| {
        out.push(SecurityDelta {
            address: address.to_string(),
            kind: kind.to_string(),
            direction,
            message,
        });
    };
    let access = |a: Access| match a {
        Access::ReadOnly => "read-only",
        Access::ReadWrite => "read-write",
    };
    for (name, sandbox) in &new.sandboxes {
        let address = format!("sandbox.{name}");
        let old = last.and_then(|l| l.sandboxes.get(name));
        match old {
            None => push(
                &address,
                "workspace-access",
                Direction::Widens,
                format!(
                    "workspace `{}` mounted {} at `{}`",
                    sandbox.workspace_host,
                    access(sandbox.workspace_access),
                    sandbox.workspace_mount
                ),
            ),
            Some(old)
                if old.workspace_access != sandbox.workspace_access
                    || old.workspace_host != sandbox.workspace_host =>
            {
                push(
                    &address,
                    "workspace-access",
                    if sandbox.workspace_access == Access::ReadWrite
                        && (old.workspace_access == Access::ReadOnly
                            || old.workspace_host != sandbox.workspace_host)
                    {
                        Direction::Widens
                    } else {
                        Direction::Narrows
                    },
                    format!(
                        "workspace `{}` {} → `{}` {}",
                        old.workspace_host,
                        access(old.workspace_access),
                        sandbox.workspace_host,
                        access(sandbox.workspace_access)
                    ),
                )
            }
            _ => {}
        }
        let old_network = old.map(|o| o.network).unwrap_or(NetworkMode::None);
        if old_network != sandbox.network {
            let (direction, message) = match sandbox.network {
                NetworkMode::Default => (
                    Direction::Widens,
                    "network none → default: the sandbox can reach the network".to_string(),
                ),
                NetworkMode::None => (Direction::Narrows, "network default → none".to_string()),
            };
            push(&address, "network", direction, message);
        }
        let old_mounts: BTreeMap<&str, &super::desired::MountSpec> = old
            .map(|o| o.mounts.iter().map(|m| (m.target.as_str(), m)).collect())
            .unwrap_or_default();
        for mount in &sandbox.mounts {
            match old_mounts.get(mount.target.as_str()) {
                None => push(
                    &address,
                    "mount",
                    Direction::Widens,
                    format!(
                        "new mount `{}` at `{}` ({})",
                        mount.source,
                        mount.target,
                        access(mount.access)
                    ),
                ),
                Some(previous)
                    if previous.access != mount.access || previous.source != mount.source =>
                {
                    push(
                        &address,
                        "mount",
                        if mount.access == Access::ReadWrite {
                            Direction::Widens
                        } else {
                            Direction::Narrows
                        },
                        format!(
                            "mount at `{}`: `{}` {} → `{}` {}",
                            mount.target,
                            previous.source,
                            access(previous.access),
                            mount.source,
                            access(mount.access)
                        ),
                    )
                }
                _ => {}
            }
        }
        for removed in old_mounts
            .keys()
            .filter(|t| !sandbox.mounts.iter().any(|m| m.target == **t))
        {
            push(
                &address,
                "mount",
                Direction::Narrows,
                format!("mount at `{removed}` removed"),
            );
        }
        let old_add: BTreeSet<&String> =
            old.map(|o| o.cap_add.iter().collect()).unwrap_or_default();
        for cap in sandbox.cap_add.iter().filter(|c| !old_add.contains(c)) {
            push(
                &address,
                "capability",
                Direction::Widens,
                format!("capability {cap} added"),
            );
        }
        let drops_all = |drop: &[String]| drop.iter().any(|c| c == "ALL");
        if let Some(old) = old
            && drops_all(&old.cap_drop)
            && !drops_all(&sandbox.cap_drop)
        {
            push(
                &address,
                "capability",
                Direction::Widens,
                "capabilities no longer all dropped: podman's default set applies".into(),
            );
        }
        if old.is_none_or(|o| o.no_new_privileges) && !sandbox.no_new_privileges {
            push(
                &address,
                "privileges",
                Direction::Widens,
                "no-new-privileges off: setuid programs can gain privileges".into(),
            );
        }
        if old.is_some_and(|o| o.read_only) && !sandbox.read_only {
            push(
                &address,
                "read-only",
                Direction::Widens,
                "root filesystem writable".into(),
            );
        }
    }
    for (key, server) in &new.servers {
        let address = format!("mcp.{key}");
        let old = last.and_then(|l| l.servers.get(key));
        if old.is_none() {
            push(
                &address,
                "server",
                Direction::Widens,
                format!(
                    "new server `{}`: its tools are exposed as `{}__*`",
                    server.name, server.name
                ),
            );
        }
        let old_secrets: BTreeSet<&String> = old
            .map(|o| {
                o.env
                    .iter()
                    .filter(|(_, v)| matches!(v, Value::Secret { .. }))
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default();
        for (name, value) in &server.env {
            if let Value::Secret { template, .. } = value
                && !old_secrets.contains(name)
            {
                push(
                    &address,
                    "secret",
                    Direction::Widens,
                    format!("secret {template} passed to the server as `{name}`"),
                );
            }
        }
    }
    if let Some(last) = last {
        for key in last
            .servers
            .keys()
            .filter(|k| !new.servers.contains_key(*k))
        {
            push(
                &format!("mcp.{key}"),
                "server",
                Direction::Narrows,
                "server removed".into(),
            );
        }
    }
    for (name, agent) in &new.agents {
        let address = format!("agent.{name}");
        let old = last.and_then(|l| l.agents.get(name));
        match (old.map(|o| &o.tools), &agent.tools) {
            (None, None) => push(
                &address,
                "tools",
                Direction::Widens,
                "every tool of the image allowed".into(),
            ),
            (None, Some(tools)) => push(
                &address,
                "tools",
                Direction::Widens,
                format!("tools allowed: {}", tools.join(", ")),
            ),
            (Some(Some(_)), None) => push(
                &address,
                "tools",
                Direction::Widens,
                "allow-list removed: every tool of the image allowed".into(),
            ),
            (Some(Some(old_tools)), Some(tools)) => {
                let added: Vec<&String> = tools.iter().filter(|t| !old_tools.contains(t)).collect();
                if !added.is_empty() {
                    push(
                        &address,
                        "tools",
                        Direction::Widens,
                        format!(
                            "tools newly allowed: {}",
                            added
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            }
            (Some(None), _) => {}
        }
        if let Some(key) = &agent.api_key {
            match old {
                Some(old) if old.base_url != agent.base_url => push(
                    &address,
                    "provider-url",
                    Direction::Widens,
                    format!(
                        "API key {key} now sent to `{}` (was `{}`)",
                        agent.base_url, old.base_url
                    ),
                ),
                None => push(
                    &address,
                    "provider-url",
                    Direction::Widens,
                    format!("API key {key} sent to `{}`", agent.base_url),
                ),
                _ => {}
            }
        }
    }
    out
}

fn config_digest(config_text: &str, desired: &Desired) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(config_text.as_bytes());
    hasher.update(b"\0");
    hasher.update(
        serde_json::to_string(desired)
            .expect("serialisable")
            .as_bytes(),
    );
    hasher.finalize().to_hex()[..32].to_string()
}

/// A fingerprint of the observed facts the plan depends on: which desired references are
/// present (and as which image), earlier builds of this project, and its containers.
fn observed_fingerprint(observed: &Observed, desired: &Desired) -> String {
    let mut facts: Vec<String> = Vec::new();
    for image in desired.images.values() {
        for o in observed
            .images
            .iter()
            .filter(|o| has_reference(o, &image.reference))
        {
            facts.push(format!("ref {} {}", image.reference, o.id));
        }
    }
    for o in &observed.images {
        if o.labels.get(labels::PROJECT) == Some(&desired.project) {
            facts.push(format!("built {} {:?}", o.id, o.names));
        }
    }
    for c in &observed.containers {
        facts.push(format!("container {} {} {:?}", c.id, c.state, c.labels));
    }
    facts.sort();
    short_hash(facts.join("\n").as_bytes())
}
