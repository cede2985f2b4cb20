//! The pure plan function: desired state × observed podman state × last applied session
//! → typed steps (address, action, reasons, the exact operation), diffs and security
//! deltas. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use similar::TextDiff;

use super::desired::Network;
use super::desired::{AgentSpec, Desired, ImageSpec, SandboxSpec, ServerSpec, Value};
use super::{
    Action, Address, AgentSetting, FORMAT_VERSION, Operation, Plan, Reason, RunSetting,
    ServerSetting, Step, Summary,
};
use crate::config::model::PullPolicy;
use crate::config::resolve::Engine;
use crate::error::Error;
use crate::podman::command::{Arg, Planned};
use crate::podman::inspect::{Observed, ObservedImage};
use crate::podman::labels;
use crate::podman::verbs::{StopTime, Verb};

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
    /// A kept sandbox (image, container name) the servers start in instead of a new one
    /// (`outrig mcp --attach`).
    pub attach: Option<(&'a str, &'a str)>,
    /// The project's `outrig.lock`, if it has one.
    pub lock: Option<&'a crate::lock::Lock>,
    /// The newest tool definitions sessions saw, by server.
    pub seen: &'a super::pins::SeenServers,
    /// The tool definitions the last applied session saw, when it recorded them.
    pub applied_tools: Option<&'a super::pins::SeenServers>,
}

/// Compute the plan.
pub fn plan(inputs: &Inputs) -> Result<Plan, Error> {
    let desired = inputs.desired;
    let last = inputs.last_applied.map(|(_, d)| d);
    let mut steps = Vec::new();
    for image in desired.images.values() {
        steps.push(image_step(image, inputs, last)?);
    }
    // Leftovers go before anything new starts.
    let mut containers = inputs.observed.containers.clone();
    containers.sort_by(|a, b| a.name().cmp(b.name()));
    for container in &containers {
        let session = container
            .label(labels::SESSION)
            .unwrap_or("unknown")
            .to_string();
        let address = Address::Container(container.name().to_string());
        let state = container.state.clone();
        if inputs.live_sessions.contains(&session) {
            steps.push(Step {
                address,
                action: Action::NoOp,
                reasons: vec![Reason::LiveSession { session, state }],
                operation: None,
                diff: None,
            });
        } else {
            steps.push(Step {
                address,
                action: Action::Remove,
                reasons: vec![Reason::Orphan { session, state }],
                operation: Some(Operation::RemoveContainer {
                    container: container.name().to_string(),
                    command: Planned::new(inputs.engine.podman.clone(), &inputs.engine.global_args)
                        .args(
                            Verb::RemoveContainer {
                                name: container.name(),
                                stop: StopTime::Now,
                            }
                            .args(),
                        ),
                }),
                diff: None,
            });
        }
    }
    for network in &inputs.observed.networks {
        let session = network
            .label(labels::SESSION)
            .unwrap_or("unknown")
            .to_string();
        if inputs.live_sessions.contains(&session) {
            continue;
        }
        steps.push(Step {
            address: Address::Network(network.name.clone()),
            action: Action::Remove,
            reasons: vec![Reason::OrphanNetwork { session }],
            operation: Some(Operation::RemoveNetwork {
                network: network.name.clone(),
                command: Planned::new(inputs.engine.podman.clone(), &inputs.engine.global_args)
                    .args(
                        Verb::RemoveNetwork {
                            name: &network.name,
                        }
                        .args(),
                    ),
            }),
            diff: None,
        });
    }
    for (name, sandbox) in &desired.sandboxes {
        if inputs.attach.is_some_and(|(image, _)| image == name) {
            continue;
        }
        if let Some(step) = proxy_step(name, sandbox, inputs, last)? {
            steps.push(step);
        }
        steps.push(sandbox_step(name, sandbox, inputs, last));
    }
    for (key, server) in &desired.servers {
        steps.push(server_step(key, server, inputs, last));
    }
    for (name, agent) in &desired.agents {
        let old = last.and_then(|l| l.agents.get(name));
        let (action, reasons) = lifecycle(last.is_some(), old, agent, agent_changes);
        steps.push(Step {
            address: Address::Agent(name.clone()),
            action,
            reasons,
            operation: None,
            diff: None,
        });
    }
    if let Some(lock) = inputs.lock {
        for step in &mut steps {
            let Address::Image(name) = &step.address else {
                continue;
            };
            if let Some((pinned, now)) =
                super::pins::image_unpinned(desired, inputs.observed, lock, name)
            {
                step.reasons.push(Reason::DiffersFromLock { pinned, now });
                if step.action == Action::NoOp {
                    step.action = Action::Update;
                }
            }
        }
    }
    let mut summary = summary(&steps);
    let mut security_deltas = super::security::deltas(last, desired);
    let (lock_deltas, lock) =
        super::pins::deltas(desired, inputs.observed, inputs.lock, inputs.seen);
    security_deltas.extend(lock_deltas);
    summary.has_changes |= lock == super::LockState::Drifted;
    summary.tool_surface =
        super::pins::surface(desired, inputs.lock, inputs.seen, inputs.applied_tools);
    Ok(Plan {
        format_version: FORMAT_VERSION,
        outrig_version: env!("CARGO_PKG_VERSION").to_string(),
        project: desired.project.clone(),
        agent: desired.agent.clone(),
        config_digest: config_digest(inputs.config_text, desired),
        last_applied_session: inputs.last_applied.map(|(id, _)| id.to_string()),
        steps,
        security_deltas,
        lock,
        summary,
        desired: desired.clone(),
    })
}

/// The counts of the summary line, from the steps' actions and reasons.
pub fn summary(steps: &[Step]) -> Summary {
    let mut summary = Summary::default();
    for step in steps {
        match (&step.address, step.action) {
            (Address::Image(_), Action::Create | Action::Replace) => summary.to_build += 1,
            (Address::Sandbox(_), _) => summary.to_start += 1,
            (Address::Server { .. }, _) => summary.servers += 1,
            (Address::Container(_) | Address::Network(_), Action::Remove) => summary.to_remove += 1,
            _ => {}
        }
        let runs = matches!(
            step.address,
            Address::Sandbox(_) | Address::Server { .. } | Address::Agent(_)
        );
        if runs && step.is_change() {
            summary.changed += 1;
        }
    }
    summary.has_changes = summary.to_build > 0 || summary.to_remove > 0 || summary.changed > 0;
    summary
}

/// Action and reasons of something every session starts (sandbox, server, agent): the
/// same as last applied, changed (the reasons name what), new, or the first of all.
fn lifecycle<T: PartialEq>(
    applied_before: bool,
    old: Option<&T>,
    new: &T,
    changes: fn(&T, &T) -> Vec<Reason>,
) -> (Action, Vec<Reason>) {
    match (applied_before, old) {
        (_, Some(old)) if old == new => (Action::Create, vec![Reason::Unchanged]),
        (_, Some(old)) => (Action::Update, changes(old, new)),
        (true, None) => (Action::Create, vec![Reason::New]),
        (false, None) => (Action::Create, vec![Reason::NothingApplied]),
    }
}

fn sandbox_step(
    name: &str,
    sandbox: &SandboxSpec,
    inputs: &Inputs,
    last: Option<&Desired>,
) -> Step {
    let desired = inputs.desired;
    let command = desired
        .run_command(inputs.engine, name)
        .expect("a desired sandbox has an image");
    // Compared by their settings: the hash of them (and of the image, compared below)
    // only names them.
    let old = last
        .and_then(|l| l.sandboxes.get(name))
        .map(|old| SandboxSpec {
            config_hash: sandbox.config_hash.clone(),
            ..old.clone()
        });
    let old = old.as_ref();
    let planned_image = &desired.images[name].reference;
    let last_image = last.and_then(|l| l.images.get(name)).map(|i| &i.reference);
    let (mut action, mut reasons) = lifecycle(last.is_some(), old, sandbox, |old, new| {
        sandbox_changes(old, new)
            .into_iter()
            .map(|setting| Reason::RunSettingChanged { setting })
            .collect()
    });
    if let Some(last_image) = last_image.filter(|l| *l != planned_image) {
        if action != Action::Update {
            action = Action::Update;
            reasons.clear();
        }
        reasons.insert(
            0,
            Reason::ImageDiffers {
                last: last_image.clone(),
                planned: planned_image.clone(),
            },
        );
    }
    let diff = match (action, old) {
        (Action::Update, Some(_)) => unified(
            &args_text(last.and_then(|l| l.run_command(inputs.engine, name))),
            &args_text(Some(command.clone())),
            "run (last applied)",
            "run (planned)",
        ),
        _ => None,
    };
    Step {
        address: Address::Sandbox(name.to_string()),
        action,
        reasons,
        operation: Some(Operation::RunSandbox {
            image: name.to_string(),
            container: desired.container(name),
            watch: desired.watch_command(inputs.engine, desired.container(name)),
            command,
        }),
        diff,
    }
}

/// The egress proxy of a sandbox with an allow-list; it starts before the sandbox.
fn proxy_step(
    name: &str,
    sandbox: &SandboxSpec,
    inputs: &Inputs,
    last: Option<&Desired>,
) -> Result<Option<Step>, Error> {
    let desired = inputs.desired;
    let Some(commands) = desired.proxy_commands(inputs.engine, name) else {
        return Ok(None);
    };
    // Like a `from` image: missing is an error now, not a step that would fail later.
    if !inputs
        .observed
        .images
        .iter()
        .any(|o| o.has_reference(&commands.proxy_image))
    {
        return Err(Error::new(format!(
            "image `{name}` has an egress list, and its proxy's image `{}` does not exist locally",
            commands.proxy_image
        ))
        .hint(
            "build it with `scripts/setup-podman.sh` (Squid from the Debian mirror), or point \
             `[engine] proxy-image` at a local image with Squid, bash and getent",
        ));
    }
    let old = last
        .and_then(|l| l.sandboxes.get(name))
        .map(|old| &old.network)
        .filter(|network| matches!(network, super::desired::Network::Egress { .. }));
    let (action, reasons) = lifecycle(last.is_some(), old, &sandbox.network, |_, _| {
        vec![Reason::RunSettingChanged {
            setting: RunSetting::Egress,
        }]
    });
    Ok(Some(Step {
        address: Address::Proxy(name.to_string()),
        action,
        reasons,
        operation: Some(Operation::RunProxy {
            image: name.to_string(),
            container: desired.proxy_container(name),
            network: desired.egress_network(name),
            commands: Box::new(commands),
        }),
        diff: None,
    }))
}

fn server_step(key: &str, server: &ServerSpec, inputs: &Inputs, last: Option<&Desired>) -> Step {
    let desired = inputs.desired;
    let container = match inputs.attach {
        Some((image, container)) if image == server.image => Arg::Text(container.to_string()),
        _ => desired.container(&server.image),
    };
    let command = desired
        .exec_command(inputs.engine, key, container.clone())
        .expect("a desired server has a command");
    let old = last.and_then(|l| l.servers.get(key));
    let (action, mut reasons) = lifecycle(last.is_some(), old, server, server_changes);
    if let Arg::Text(container) = &container {
        reasons.push(Reason::Attached {
            container: container.clone(),
        });
    }
    let diff = match (action, old) {
        (Action::Update, Some(old)) => unified(
            &args_text(
                last.and_then(|l| l.exec_command(inputs.engine, key, l.container(&old.image))),
            ),
            &args_text(desired.exec_command(inputs.engine, key, desired.container(&server.image))),
            "exec (last applied)",
            "exec (planned)",
        ),
        _ => None,
    };
    Step {
        address: Address::server(key),
        action,
        reasons,
        operation: Some(Operation::StartServer {
            container,
            transport: desired.engine.transport(),
            command,
        }),
        diff,
    }
}

fn image_step(image: &ImageSpec, inputs: &Inputs, last: Option<&Desired>) -> Result<Step, Error> {
    let address = Address::Image(image.name.clone());
    let step = |action, reasons, operation, diff| Step {
        address: address.clone(),
        action,
        reasons,
        operation,
        diff,
    };
    let present = inputs
        .observed
        .images
        .iter()
        .any(|o| o.has_reference(&image.reference));
    let pull = || Operation::Pull {
        command: Planned::new(inputs.engine.podman.clone(), &inputs.engine.global_args)
            .args(["pull", &image.reference]),
    };
    let Some(build) = &image.build else {
        return match (present, image.pull) {
            (true, PullPolicy::Always) => Ok(step(
                Action::Create,
                vec![Reason::PullAlways],
                Some(pull()),
                None,
            )),
            (true, _) => Ok(step(
                Action::NoOp,
                vec![Reason::ImagePresent {
                    reference: image.reference.clone(),
                }],
                None,
                None,
            )),
            (false, PullPolicy::Never) => Err(Error::new(format!(
                "image `{}` uses `{}`, which does not exist locally",
                image.name, image.reference
            ))
            .hint("build or load it first, or set `pull = \"missing\"` to let podman fetch it")),
            (false, _) => Ok(step(
                Action::Create,
                vec![Reason::ImageNotLocal],
                Some(pull()),
                None,
            )),
        };
    };
    if present {
        return Ok(step(
            Action::NoOp,
            vec![Reason::ImageCurrent {
                reference: image.reference.clone(),
            }],
            None,
            None,
        ));
    }
    let operation = Some(Operation::Build {
        image: image.name.clone(),
        command: inputs
            .desired
            .build_command(inputs.engine, inputs.root, image)
            .expect("a built image has a build command"),
    });
    // An earlier build of this image for this project.
    let earlier: Option<&ObservedImage> = inputs.observed.images.iter().find(|o| {
        o.labels.get(labels::IMAGE).map(String::as_str) == Some(image.name.as_str())
            && o.labels.get(labels::PROJECT).map(String::as_str)
                == Some(inputs.desired.project.as_str())
    });
    let Some(earlier) = earlier else {
        return Ok(step(
            Action::Create,
            vec![Reason::ImageMissing],
            operation,
            None,
        ));
    };
    let mut reasons = Vec::new();
    let mut diff = String::new();
    let old_build = last
        .and_then(|l| l.images.get(&image.name))
        .and_then(|i| i.build.as_ref());
    if earlier.labels.get(labels::CONTAINERFILE_HASH) != Some(&build.containerfile_hash) {
        reasons.push(Reason::ContainerfileChanged);
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
        let changes = (inputs.manifests)(earlier_context)
            .map(|old| super::context::changes(&old, &build.context_manifest))
            .unwrap_or_default();
        let more = changes.len().saturating_sub(5);
        reasons.push(Reason::ContextChanged {
            changes: changes.into_iter().take(5).collect(),
            more,
        });
    }
    if earlier.labels.get(labels::ARGS_HASH) != Some(&build.args_hash) {
        reasons.push(Reason::BuildArgumentsChanged);
        if let Some(old) = old_build.filter(|o| o.args_hash != build.args_hash) {
            reasons.extend(secret_changes(&old.build_args, &build.build_args));
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
    if reasons.is_empty() {
        reasons.push(Reason::BuildInputsChanged);
    }
    reasons.push(Reason::Replaces {
        reference: earlier
            .names
            .first()
            .map_or(earlier.id.as_str(), String::as_str)
            .to_string(),
    });
    Ok(step(
        Action::Replace,
        reasons,
        operation,
        (!diff.is_empty()).then_some(diff),
    ))
}

/// Secrets whose value changed between two sets of values (by fingerprint).
fn secret_changes(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Vec<Reason> {
    new.iter()
        .filter_map(|(name, value)| match (old.get(name), value) {
            (
                Some(Value::Secret {
                    template: old_template,
                    fingerprint: old_print,
                }),
                Value::Secret {
                    template,
                    fingerprint,
                },
            ) if old_template == template && old_print != fingerprint => {
                Some(Reason::SecretValueChanged {
                    name: name.clone(),
                    variables: crate::secret::references(template),
                })
            }
            _ => None,
        })
        .collect()
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

/// An argument list one per line, for diffs.
fn args_text(command: Option<Planned>) -> String {
    command
        .map(|c| {
            c.shown_args()
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

fn sandbox_changes(old: &SandboxSpec, new: &SandboxSpec) -> Vec<RunSetting> {
    let mut out = Vec::new();
    match (&old.network, &new.network) {
        (a, b) if a == b => {}
        (Network::Egress { .. }, Network::Egress { .. }) => out.push(RunSetting::Egress),
        _ => out.push(RunSetting::Network),
    }
    if old.workspace_host != new.workspace_host
        || old.workspace_mount != new.workspace_mount
        || old.workspace_access != new.workspace_access
    {
        out.push(RunSetting::Workspace);
    }
    if old.mounts != new.mounts || old.tmpfs != new.tmpfs {
        out.push(RunSetting::Mounts);
    }
    if old.cap_add != new.cap_add || old.cap_drop != new.cap_drop {
        out.push(RunSetting::Capabilities);
    }
    if old.no_new_privileges != new.no_new_privileges || old.read_only != new.read_only {
        out.push(RunSetting::SecurityOptions);
    }
    if old.user_namespace != new.user_namespace {
        out.push(RunSetting::UserNamespace);
    }
    if old.pids_limit != new.pids_limit
        || old.memory != new.memory
        || old.cpus != new.cpus
        || old.limits_enforced != new.limits_enforced
    {
        out.push(RunSetting::Limits);
    }
    out
}

fn server_changes(old: &ServerSpec, new: &ServerSpec) -> Vec<Reason> {
    let mut out = Vec::new();
    let setting = |setting| Reason::ServerSettingChanged { setting };
    if old.command != new.command {
        out.push(setting(ServerSetting::Command));
    }
    let secrets = secret_changes(&old.env, &new.env);
    let only_secret_values = old.env.len() == new.env.len()
        && old.env.keys().eq(new.env.keys())
        && old
            .env
            .iter()
            .filter(|(k, v)| new.env.get(*k) != Some(*v))
            .all(|(k, _)| {
                secrets
                    .iter()
                    .any(|r| matches!(r, Reason::SecretValueChanged { name, .. } if name == k))
            });
    if old.env != new.env && !only_secret_values {
        out.push(setting(ServerSetting::Environment));
    }
    out.extend(secrets);
    if old.workdir != new.workdir {
        out.push(setting(ServerSetting::WorkingDirectory));
    }
    if old.startup_timeout_ms != new.startup_timeout_ms
        || old.call_timeout_ms != new.call_timeout_ms
        || old.result_max_bytes != new.result_max_bytes
    {
        out.push(setting(ServerSetting::Limits));
    }
    out
}

fn agent_changes(old: &AgentSpec, new: &AgentSpec) -> Vec<Reason> {
    let mut out = Vec::new();
    let mut push = |setting| out.push(Reason::AgentSettingChanged { setting });
    if old.identifier != new.identifier || old.model != new.model {
        push(AgentSetting::Model);
    }
    if old.provider != new.provider || old.base_url != new.base_url || old.api_key != new.api_key {
        push(AgentSetting::Provider);
    }
    if old.tools != new.tools {
        push(AgentSetting::ToolAllowList);
    }
    if old.image != new.image {
        push(AgentSetting::Image);
    }
    if old.tool_call_max != new.tool_call_max || old.tool_result_max != new.tool_result_max {
        push(AgentSetting::Limits);
    }
    out
}

pub(super) fn config_digest(config_text: &str, desired: &Desired) -> String {
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
