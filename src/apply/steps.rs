//! The plan's steps, carried out in order and recorded in the session: builds and pulls
//! streamed, orphans removed, the sandbox and its egress proxy started, servers prepared
//! (they start together, see [`super::servers`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Error;
use crate::plan::argv::ProxyCommands;
use crate::plan::{Address, Operation, Plan, Step};
use crate::podman::PodmanCommand;
use crate::podman::command::{Arg, Binding, Secrets};
use crate::podman::runtime::{Transport, Watch};
use crate::session::{ContainerRecord, Session};

use super::egress::{follow_egress_log, prove_egress, proxy_addresses, proxy_error, proxy_key};
use super::record::{Streamed, begin_step, end_step, run_step, run_streamed, stderr_log_name};
use super::servers::{Launch, RunningServer, start_servers};
use super::{Context, progress, redacted};

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
            addresses: Default::default(),
            secrets: Some(Secrets {
                env: context.env,
                key: context.key,
            }),
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
        // The command with the session's values and the secrets' values (checked against
        // the plan); a server's is handed on, to end the servers prepared before it.
        let bound = operation.command().bind(&run.binding);
        match operation {
            Operation::Build { .. } | Operation::Pull { .. } => {
                let (kind, image, command) = match (operation, &planned.address) {
                    (Operation::Build { image, .. }, _) => (Streamed::Build, image, bound?),
                    (_, Address::Image(image)) => (Streamed::Pull, image, bound?),
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
                run_step(session, context, address, planned.action, bound?).await?;
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
                    watch: watch.bind(&run.binding)?,
                };
                run.sandbox(
                    session,
                    context,
                    watches,
                    (planned, &plan.desired),
                    bound?,
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
                run.proxy(session, context, watches, planned, bound?, proxy)
                    .await?;
            }
            Operation::StartServer {
                container,
                transport,
                ..
            } => {
                let container = container.bind(&run.binding);
                let prepared = prepare_server(
                    session,
                    (planned, &plan.desired),
                    bound,
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
struct Run<'a> {
    /// The values later commands are bound with: the session, the proxies' addresses,
    /// where the secrets' values come from.
    binding: Binding<'a>,
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

impl Run<'_> {
    /// Servers started in a kept sandbox (`outrig mcp --attach`) use its kept proxy: its
    /// addresses are read before anything starts.
    async fn bind_kept_proxies(&mut self, plan: &Plan, context: &Context<'_>) -> Result<(), Error> {
        for planned in &plan.steps {
            let (
                Some(Operation::StartServer {
                    container: Arg::Text(container),
                    command,
                    ..
                }),
                Address::Server { image, .. },
            ) = (&planned.operation, &planned.address)
            else {
                continue;
            };
            // Only a command that goes through the proxy by its session address (not a
            // pod's, which names the proxy's Service).
            let placeholder = crate::plan::argv::proxy_placeholder(image);
            let marker = format!("{{{placeholder}}}");
            let through_proxy = command
                .args
                .iter()
                .any(|a| matches!(a, Arg::Session { session } if session.contains(&marker)));
            if through_proxy && !self.binding.addresses.contains_key(&placeholder) {
                let (inside, outside) = proxy_addresses(
                    context,
                    &crate::podman::verbs::proxy_container(container),
                    &crate::podman::verbs::egress_network(container),
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
        addresses.insert(crate::plan::argv::proxy_placeholder(image), inside);
        addresses.insert(crate::plan::argv::proxy_outside_placeholder(image), outside);
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
        let network = commands.network.bind(&self.binding)?;
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
            .start_watch(&commands.watch.bind(&self.binding)?)
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
