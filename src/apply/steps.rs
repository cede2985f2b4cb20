//! The plan's steps, carried out in order and recorded in the session: builds and pulls
//! streamed, orphans removed, the sandbox and its egress proxy started, servers prepared
//! (they start together, see [`super::servers`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::plan::desired::ProxyCommands;
use crate::plan::{Action, Address, Operation, Plan, SecretInput, Step};
use crate::podman::command::{Arg, Binding};
use crate::podman::runtime::{Transport, Watch};
use crate::podman::{PodmanCommand, Runtime};
use crate::secret::Redactor;
use crate::session::{ContainerRecord, Session, StepRecord, StepStatus};

use super::egress::{follow_egress_log, prove_egress, proxy_addresses, proxy_error, proxy_key};
use super::servers::{Launch, RunningServer, start_servers};
use super::{Context, progress, redacted};

/// Run one podman command as a recorded step.
pub(super) async fn step<T>(
    session: &mut Session,
    redactor: &Redactor,
    address: &str,
    action: Action,
    command: Option<&PodmanCommand>,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, Error> {
    let started = Instant::now();
    let index = begin_step(session, address, action, command);
    let result = work.await.map_err(|message| redactor.redact(&message));
    end_step(session, index, started.elapsed(), result.as_ref().err());
    match result {
        Ok(value) => {
            progress(
                address,
                &format!("done in {:.1} s", started.elapsed().as_secs_f64()),
            );
            Ok(value)
        }
        Err(message) => Err(Error::new(format!("`{address}` failed")).cause(message)),
    }
}

/// Run a podman command to completion as a recorded step; its stdout.
pub(super) async fn run_step(
    session: &mut Session,
    context: &Context<'_>,
    address: &str,
    action: Action,
    command: PodmanCommand,
) -> Result<String, Error> {
    let work = run_blocking(&context.runtime, command.clone());
    step(
        session,
        &context.redactor,
        address,
        action,
        Some(&command),
        work,
    )
    .await
}

/// The long podman steps whose output is shown as it arrives.
#[derive(Debug, Clone, Copy)]
enum Streamed {
    Build,
    Pull,
}

/// Run a long podman command (a build, a pull) as a recorded step, its output shown as it
/// arrives ([`crate::output::Activity`]) and kept whole in the session's `logs/<log>`, every
/// line with secret values taken out before it is shown or written.
async fn run_streamed(
    session: &mut Session,
    context: &Context<'_>,
    address: &str,
    action: Action,
    command: PodmanCommand,
    kind: Streamed,
    image: &str,
) -> Result<(), Error> {
    let (log, doing) = match kind {
        Streamed::Build => (format!("build-{image}.log"), "building"),
        Streamed::Pull => (format!("pull-{image}.log"), "pulling"),
    };
    let path = session.log_path(&log);
    progress(address, &format!("{doing} (log: {})", path.display()));
    let activity = crate::output::Activity::start(address);
    let lines = activity.lines();
    let redactor = context.redactor.clone();
    let runtime = context.runtime.clone();
    let shown = command.clone();
    let work = async move {
        let mut file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create `{}`: {e}", path.display()))?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut attempt = 1;
            loop {
                let mut on_line = |line: &str| {
                    let line = redactor.redact(line);
                    let _ = writeln!(file, "{line}");
                    lines.line(&line);
                };
                match runtime.run_lines(&command, &mut on_line) {
                    Err(error) if attempt < BUILD_ATTEMPTS && lost_to_a_removal(&error) => {
                        attempt += 1;
                        let again = "podman lost a layer to an image removed meanwhile; again";
                        let _ = writeln!(file, "{again}");
                        lines.line(again);
                    }
                    result => return result,
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    };
    step(
        session,
        &context.redactor,
        address,
        action,
        Some(&shown),
        async move {
            let result = work.await;
            // The live line is cleared before the step's outcome is printed.
            drop(activity);
            result
        },
    )
    .await
}

/// How many times a build or pull is tried when podman loses a layer to an image another
/// process removes while it runs.
const BUILD_ATTEMPTS: usize = 3;

/// Whether podman failed because an image or layer it was looking at was removed meanwhile
/// (podman 4's build cache check fails with "layer not known" when another `podman rmi` or
/// `outrig clean --images` runs at the same time): worth trying again, unlike a real failure.
fn lost_to_a_removal(error: &crate::podman::runtime::ProcessError) -> bool {
    error.status == Some(125)
        && ["layer not known", "image not known"]
            .iter()
            .any(|symptom| error.stderr_tail.contains(symptom))
}

/// Record a step as running; its index in the record.
fn begin_step(
    session: &mut Session,
    address: &str,
    action: Action,
    command: Option<&PodmanCommand>,
) -> usize {
    session.record.steps.push(StepRecord {
        address: address.to_string(),
        action: action.name().to_string(),
        command: command.map(|c| c.to_string()),
        status: StepStatus::Running,
        started_at: session.now(),
        duration_ms: 0,
        error: None,
    });
    let _ = session.save();
    session.record.steps.len() - 1
}

/// Record how a step ended: done, or failed with `error`.
pub(super) fn end_step(
    session: &mut Session,
    index: usize,
    elapsed: Duration,
    error: Option<&String>,
) {
    let step = &mut session.record.steps[index];
    step.duration_ms = elapsed.as_millis() as u64;
    step.status = match error {
        None => StepStatus::Done,
        Some(_) => StepStatus::Failed,
    };
    step.error = error.cloned();
    let _ = session.save();
}

/// A server's stderr log, relative to the session's `logs/`.
pub(super) fn stderr_log_name(key: &str) -> String {
    format!("{key}.stderr")
}

/// Put secret values on the command's process environment (never its arguments), each
/// checked against the fingerprint it had when planned.
fn with_secrets(
    mut command: PodmanCommand,
    secrets: &[SecretInput],
    context: &Context<'_>,
) -> Result<PodmanCommand, Error> {
    for secret in secrets {
        let value = crate::secret::resolve(&secret.template, context.env).map_err(|unset| {
            Error::new(format!(
                "`{}` ({}) cannot be resolved: `{}` is not set",
                secret.name, secret.template, unset.0
            ))
            .hint("export it and plan again")
        })?;
        if context.key.fingerprint(&value) != secret.fingerprint {
            return Err(Error::new(format!(
                "the value of `{}` ({}) changed since the plan was made",
                secret.name, secret.template
            ))
            .hint("run `outrig plan` again and review it"));
        }
        command.process_env.push((secret.name.clone(), value));
    }
    Ok(command)
}

pub(super) async fn run_blocking(
    runtime: &Arc<dyn Runtime>,
    command: PodmanCommand,
) -> Result<String, String> {
    let runtime = runtime.clone();
    tokio::task::spawn_blocking(move || {
        runtime
            .run(&command)
            .map(|o| o.stdout)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Carry out the plan's steps in order, recording each; the servers start together once
/// everything else is in place, and those that answered join `servers`.
pub(super) async fn run_steps(
    plan: &Plan,
    session: &mut Session,
    context: &Context<'_>,
    servers: &mut Vec<RunningServer>,
    watches: &mut Vec<Watch>,
) -> Result<(), Error> {
    let mut run = Run {
        binding: Binding {
            session_id: session.record.id.clone(),
            session_dir: session.dir.display().to_string(),
            ..Default::default()
        },
        launches: Vec::new(),
        proxies: BTreeMap::new(),
    };
    run.bind_kept_proxies(plan, context).await?;
    for planned in &plan.steps {
        let Some(operation) = &planned.operation else {
            continue;
        };
        let address = planned.address.to_string();
        let address = address.as_str();
        let command = operation.command().bind(&run.binding);
        match operation {
            Operation::Build { .. } | Operation::Pull { .. } => {
                let (kind, image, command) = match (operation, &planned.address) {
                    (Operation::Build { image, secrets, .. }, _) => (
                        Streamed::Build,
                        image,
                        with_secrets(command, secrets, context)?,
                    ),
                    (_, Address::Image(image)) => (Streamed::Pull, image, command),
                    _ => {
                        return Err(Error::new(format!(
                            "`{address}` pulls an image but is not an image's address"
                        )));
                    }
                };
                let action = planned.action;
                run_streamed(session, context, address, action, command, kind, image).await?;
            }
            Operation::RemoveContainer { .. } | Operation::RemoveNetwork { .. } => {
                progress(address, "removing orphan");
                run_step(session, context, address, planned.action, command).await?;
            }
            Operation::RunSandbox {
                image,
                container,
                watch,
                ..
            } => {
                let sandbox = Sandbox {
                    image,
                    name: container.bind(&run.binding),
                    watch: watch.bind(&run.binding),
                };
                run.sandbox(
                    session,
                    context,
                    watches,
                    (planned, &plan.desired),
                    command,
                    sandbox,
                )
                .await?;
            }
            Operation::RunProxy {
                image,
                container,
                network,
                commands,
            } => {
                let proxy = Proxy {
                    image,
                    name: container.bind(&run.binding),
                    network: network.bind(&run.binding),
                    commands,
                };
                run.proxy(session, context, watches, planned, command, proxy)
                    .await?;
            }
            Operation::StartServer {
                container,
                secrets,
                transport,
                ..
            } => {
                let container = container.bind(&run.binding);
                let prepared = prepare_server(
                    session,
                    (planned, &plan.desired),
                    with_secrets(command, secrets, context),
                    (container, *transport),
                );
                match prepared {
                    Ok(launch) => run.launches.push(launch),
                    Err(error) => {
                        let not_started = format!("not started: `{address}` failed");
                        for launch in &run.launches {
                            end_step(session, launch.step, Duration::ZERO, Some(&not_started));
                        }
                        return Err(error);
                    }
                }
            }
        }
    }
    start_servers(session, context, run.launches, servers).await
}

/// What carrying out the steps has learned so far.
struct Run {
    /// The values later commands are bound with: the session, the proxies' addresses.
    binding: Binding,
    /// The servers to start once everything else is in place.
    launches: Vec<Launch>,
    /// The egress proxies started, by image: their sandbox's probes run once it runs.
    proxies: BTreeMap<String, ProxyCommands>,
}

/// A sandbox to start: its image, container name and watcher, bound.
struct Sandbox<'a> {
    image: &'a str,
    name: String,
    watch: PodmanCommand,
}

/// An egress proxy to start for an image's sandbox, its names bound.
struct Proxy<'a> {
    image: &'a str,
    name: String,
    network: String,
    commands: &'a ProxyCommands,
}

impl Run {
    /// Servers started in a kept sandbox (`outrig mcp --attach`) use its kept proxy: its
    /// addresses are read before anything starts.
    async fn bind_kept_proxies(&mut self, plan: &Plan, context: &Context<'_>) -> Result<(), Error> {
        for planned in &plan.steps {
            let (
                Some(Operation::StartServer {
                    container: Arg::Text(container),
                    ..
                }),
                Address::Server { image, .. },
            ) = (&planned.operation, &planned.address)
            else {
                continue;
            };
            let placeholder = crate::plan::desired::proxy_placeholder(image);
            let egress = plan
                .desired
                .sandboxes
                .get(image)
                .is_some_and(|s| !s.network.destinations().is_empty());
            if egress && !self.binding.addresses.contains_key(&placeholder) {
                let (inside, outside) = proxy_addresses(
                    context,
                    &format!("{container}-proxy"),
                    &format!("{container}-egress"),
                )
                .await
                .map_err(|e| {
                    e.hint(
                        "the kept sandbox's proxy must still run: `outrig destroy` and apply again",
                    )
                })?;
                self.bind_proxy(image, inside, outside);
            }
        }
        Ok(())
    }

    /// Bind an image's proxy addresses: `inside` its sandbox's network, `outside` it.
    fn bind_proxy(&mut self, image: &str, inside: String, outside: String) {
        let addresses = &mut self.binding.addresses;
        addresses.insert(crate::plan::desired::proxy_placeholder(image), inside);
        addresses.insert(
            crate::plan::desired::proxy_outside_placeholder(image),
            outside,
        );
    }

    /// Start a sandbox, recorded before it starts (so a crash still names what to clean
    /// up), then its watcher (from here the sandbox ends with outrig, however outrig
    /// ends), then prove its egress when it has a proxy.
    async fn sandbox(
        &mut self,
        session: &mut Session,
        context: &Context<'_>,
        watches: &mut Vec<Watch>,
        (planned, desired): (&Step, &crate::plan::Desired),
        command: PodmanCommand,
        sandbox: Sandbox<'_>,
    ) -> Result<(), Error> {
        let address = planned.address.to_string();
        let address = address.as_str();
        let image = sandbox.image;
        progress(address, "starting");
        session.record.containers.insert(
            image.to_string(),
            ContainerRecord {
                name: sandbox.name,
                id: String::new(),
                image: desired
                    .images
                    .get(image)
                    .map(|i| i.reference.clone())
                    .unwrap_or_default(),
                removed: false,
            },
        );
        let id = run_step(session, context, address, planned.action, command)
            .await
            .map_err(|error| unseen_path(error, desired, image))?;
        if let Some(record) = session.record.containers.get_mut(image) {
            record.id = id.trim().to_string();
        }
        let _ = session.save();
        let watcher = context.runtime.start_watch(&sandbox.watch).map_err(|e| {
            redacted(
                e.error(format!("`{address}`: cannot start the sandbox's watcher")),
                &context.redactor,
            )
        })?;
        watches.push(watcher);
        if let Some(commands) = self.proxies.get(image) {
            prove_egress(session, context, address, image, commands, &self.binding).await?;
        }
        Ok(())
    }

    /// Start an image's egress proxy on its internal network, recorded as it goes, and
    /// bind its addresses for the sandbox's command.
    async fn proxy(
        &mut self,
        session: &mut Session,
        context: &Context<'_>,
        watches: &mut Vec<Watch>,
        planned: &Step,
        command: PodmanCommand,
        proxy: Proxy<'_>,
    ) -> Result<(), Error> {
        let address = planned.address.to_string();
        let address = address.as_str();
        let (image, commands) = (proxy.image, proxy.commands);
        progress(address, "starting the egress proxy");
        session.record.egress.insert(
            image.to_string(),
            crate::session::EgressRecord {
                network: proxy.network.clone(),
                network_removed: false,
                proxy_address: String::new(),
                probes: Vec::new(),
            },
        );
        let network = commands.network.bind(&self.binding);
        run_step(session, context, address, planned.action, network).await?;
        session.record.containers.insert(
            proxy_key(image),
            ContainerRecord {
                name: proxy.name.clone(),
                id: String::new(),
                image: commands.proxy_image.clone(),
                removed: false,
            },
        );
        let id = run_step(session, context, address, planned.action, command)
            .await
            .map_err(|error| proxy_error(error, commands))?;
        if let Some(record) = session.record.containers.get_mut(&proxy_key(image)) {
            record.id = id.trim().to_string();
        }
        let watcher = context
            .runtime
            .start_watch(&commands.watch.bind(&self.binding))
            .map_err(|e| e.error(format!("`{address}`: cannot start the proxy's watcher")))?;
        watches.push(watcher);
        let (inside, outside) = proxy_addresses(context, &proxy.name, &proxy.network).await?;
        self.bind_proxy(image, inside.clone(), outside);
        if let Some(record) = session.record.egress.get_mut(image) {
            record.proxy_address = format!("{inside}:{}", crate::egress::PROXY_PORT);
        }
        let _ = session.save();
        follow_egress_log(context, session, image, &proxy.name);
        self.proxies.insert(image.to_string(), commands.clone());
        Ok(())
    }
}

/// A server to start with the others: its log opened and its step recorded as running.
fn prepare_server(
    session: &mut Session,
    (planned, desired): (&Step, &crate::plan::Desired),
    command: Result<PodmanCommand, Error>,
    (container, transport): (String, Transport),
) -> Result<Launch, Error> {
    let address = planned.address.to_string();
    let Address::Server { image, server } = &planned.address else {
        return Err(Error::new(format!(
            "`{address}` starts a server but is not a server's address"
        )));
    };
    let key = format!("{image}.{server}");
    let log_name = stderr_log_name(&key);
    let spec = desired
        .servers
        .get(&key)
        .ok_or_else(|| Error::new(format!("`{address}` is not in the plan's desired state")))?;
    let command = command?;
    let log = std::fs::File::create(session.log_path(&log_name))
        .map_err(|e| Error::new("cannot create a server log").cause(e.to_string()))?;
    progress(&address, "starting");
    Ok(Launch {
        step: begin_step(session, &address, planned.action, Some(&command)),
        key,
        container,
        command,
        transport,
        log,
        stderr_log: session.log_path(&log_name),
        startup: Duration::from_millis(spec.startup_timeout_ms),
        max_message: spec.result_max_bytes as usize,
    })
}

/// A sandbox that could not start because a path it mounts does not exist where the
/// engine runs: on a remote engine (a podman machine, a service elsewhere) the host paths
/// are the engine's, not this machine's. Said so, with what to do.
fn unseen_path(error: Error, desired: &crate::plan::Desired, image: &str) -> Error {
    let Some(sandbox) = desired.sandboxes.get(image) else {
        return error;
    };
    let text = error.render();
    let sources =
        std::iter::once(&sandbox.workspace_host).chain(sandbox.mounts.iter().map(|m| &m.source));
    let Some(missing) = sources
        .into_iter()
        .find(|source| text.contains(&format!("statfs {source}: no such file or directory")))
    else {
        return error;
    };
    let (what, hint) = if desired.engine.remote {
        (
            format!(
                "`{missing}` does not exist on the podman host: this engine is remote, and it mounts its own paths, not this machine's"
            ),
            "put the project where the engine sees it (a podman machine shares only some directories, on macOS /Users by default; `podman machine init --volume` adds others), or run outrig where the engine runs",
        )
    } else {
        (
            format!("`{missing}` does not exist"),
            "create it, or fix the path in outrig.toml",
        )
    };
    error.cause(what).hint(hint)
}
