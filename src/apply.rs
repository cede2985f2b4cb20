//! Carrying out a plan: the operations its steps carry, in order — build and pull images,
//! remove orphans, start the sandbox, start every MCP server in it and prove it answers —
//! recording everything in the session, then tearing down (unless kept). It decides by
//! matching on each step's [`Operation`], never by reading words or argument positions, and
//! runs podman only through the [`Runtime`] it is handed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::resolve::Engine;
use crate::digest::short_hash;
use crate::error::{Error, ExitStatus};
use crate::mcp::Backend;
use crate::mcp::client::{self, Connection};
use crate::plan::desired::server_marker;
use crate::plan::{Action, Address, Operation, Plan, SecretInput};
use crate::podman::command::{Arg, Binding};
use crate::podman::runtime::Watch;
use crate::podman::{PodmanCommand, Runtime};
use crate::secret::{FingerprintKey, Redactor};
use crate::session::{
    ContainerRecord, EndReason, ServerRecord, Session, Status, StepRecord, StepStatus, ToolRecord,
};

/// A server started for the session.
struct RunningServer {
    key: String,
    /// The container it runs in.
    container: String,
    exit: crate::podman::runtime::Exit,
    connection: Option<Connection>,
    tools: Vec<crate::mcp::client::Listed>,
}

/// What apply needs besides the plan.
pub struct Context<'a> {
    /// What runs podman.
    pub runtime: Arc<dyn Runtime>,
    /// The engine teardown talks to (the plan's commands carry their own).
    pub engine: &'a Engine,
    /// Host variables, for the secrets handed to podman.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The key the plan's secret fingerprints were made with.
    pub key: &'a FingerprintKey,
    /// Keeps secret values out of every error and record.
    pub redactor: Redactor,
    /// Leave the sandbox running after the servers were proven.
    pub keep: bool,
    /// While set, SIGINT is left to the work (the agent's REPL cancels a turn with it).
    pub interrupts_handled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Where stopping signals come from.
    pub signals: SignalSource,
    /// Where what the servers send towards their client goes (the gateway's clients).
    pub hub: Arc<crate::mcp::relay::Hub>,
    /// Cancelled when the gateway's client closed its session: the apply stops there,
    /// even before its work starts.
    pub client_gone: Option<tokio_util::sync::CancellationToken>,
    /// Why the session ended when its work returns: the agent's job was done, or (for a
    /// gateway) the client closed the session.
    pub done: EndReason,
}

/// Why an apply stopped before finishing.
#[derive(Debug)]
pub enum Stop {
    Failed(Error),
    Interrupted(Signal),
    /// The gateway's client closed its session before the gateway was ready.
    ClientLeft,
}

/// How a session ended, as recorded.
pub struct Ending {
    pub status: Status,
    pub reason: EndReason,
    pub exit: ExitStatus,
}

/// How an apply that ended with `result` is recorded; `keep`: the sandbox stays after
/// success; `done`: why a session whose work returned ended.
pub fn ending(result: &Result<(), Stop>, keep: bool, done: EndReason) -> Ending {
    let (status, reason, exit) = match result {
        Ok(()) if keep => (Status::Kept, done, ExitStatus::Success),
        Ok(()) => (Status::Finished, done, ExitStatus::Success),
        Err(Stop::ClientLeft) => (
            Status::Finished,
            EndReason::ClientClosed,
            ExitStatus::Success,
        ),
        Err(Stop::Failed(_)) => (Status::Failed, EndReason::Failed, ExitStatus::Failure),
        Err(Stop::Interrupted(signal)) => (
            Status::Interrupted,
            signal.end_reason(),
            signal.exit_status(),
        ),
    };
    Ending {
        status,
        reason,
        exit,
    }
}

/// A signal that ends an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    HangUp,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::HangUp => "SIGHUP",
        }
    }

    pub fn exit_status(self) -> ExitStatus {
        match self {
            Signal::Interrupt => ExitStatus::Interrupted,
            Signal::Terminate => ExitStatus::Terminated,
            Signal::HangUp => ExitStatus::HungUp,
        }
    }

    pub fn end_reason(self) -> EndReason {
        match self {
            Signal::Interrupt => EndReason::Interrupt,
            Signal::Terminate => EndReason::Terminate,
            Signal::HangUp => EndReason::HangUp,
        }
    }
}

/// Where the signals that stop an apply come from.
pub enum SignalSource {
    /// SIGINT, SIGTERM and SIGHUP of this process.
    Process,
    /// Signals sent on a channel (tests).
    Channel(std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>>),
}

impl SignalSource {
    /// A source fed by the returned sender.
    pub fn channel() -> (SignalSource, tokio::sync::mpsc::UnboundedSender<Signal>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        (
            SignalSource::Channel(std::sync::Mutex::new(Some(receiver))),
            sender,
        )
    }
}

enum Listener {
    Process {
        interrupt: tokio::signal::unix::Signal,
        terminate: tokio::signal::unix::Signal,
        hang_up: tokio::signal::unix::Signal,
    },
    Channel(Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>),
}

/// Listeners for SIGINT, SIGTERM and SIGHUP.
struct Signals {
    /// While set, SIGINT is not ours.
    pass_interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    listener: Listener,
}

impl Signals {
    fn new(source: &SignalSource) -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let listener = match source {
            SignalSource::Process => Listener::Process {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                hang_up: signal(SignalKind::hangup())?,
            },
            SignalSource::Channel(receiver) => {
                Listener::Channel(receiver.lock().ok().and_then(|mut r| r.take()))
            }
        };
        Ok(Signals {
            pass_interrupt: None,
            listener,
        })
    }

    async fn next(&mut self) -> Signal {
        loop {
            let signal = match &mut self.listener {
                Listener::Process {
                    interrupt,
                    terminate,
                    hang_up,
                } => tokio::select! {
                    _ = interrupt.recv() => Signal::Interrupt,
                    _ = terminate.recv() => Signal::Terminate,
                    _ = hang_up.recv() => Signal::HangUp,
                },
                Listener::Channel(receiver) => match receiver.as_mut() {
                    Some(receiver) => match receiver.recv().await {
                        Some(signal) => signal,
                        None => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                },
            };
            let passed = self
                .pass_interrupt
                .as_ref()
                .is_some_and(|flag| flag.load(std::sync::atomic::Ordering::SeqCst));
            if signal != Signal::Interrupt || !passed {
                return signal;
            }
        }
    }
}

/// Apply `plan` in `session`, then hand the servers that answered to `work` (which returns
/// when the session's job is done). Whatever happens — success, a failed step, SIGINT,
/// SIGTERM or SIGHUP, the gateway's client leaving — the end is recorded at once, then
/// what was started is torn down (unless kept after success) and the teardown recorded,
/// before returning. A second SIGINT during teardown exits at once; SIGTERM and SIGHUP do
/// not.
pub async fn apply<W>(
    plan: &Plan,
    session: &mut Session,
    context: &Context<'_>,
    work: W,
) -> Result<(), Stop>
where
    W: AsyncFnOnce(&mut Session, Vec<Backend>) -> Result<(), Error>,
{
    let mut signals = Signals::new(&context.signals)
        .map_err(|e| Stop::Failed(Error::new("cannot listen for signals").cause(e.to_string())))?;
    signals.pass_interrupt = context.interrupts_handled.clone();
    let mut servers: Vec<RunningServer> = Vec::new();
    let mut watches: Vec<Watch> = Vec::new();
    let client_gone = async {
        match &context.client_gone {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        // A signal that arrives with the work's end (a client's EOF) still counts.
        biased;
        signal = signals.next() => Err(Stop::Interrupted(signal)),
        // The work ends with the client's session when it is serving it (and records what
        // it saw); before that, the client leaving stops the apply.
        result = async {
            run_steps(plan, session, context, &mut servers, &mut watches).await?;
            let backends = backends(plan, session, &servers);
            work(session, backends).await
        } => result.map_err(|error| Stop::Failed(redacted(error, &context.redactor))),
        () = client_gone => Err(Stop::ClientLeft),
    };
    if let Err(Stop::Interrupted(signal)) = &result {
        crate::output::status!(
            "\n{}: stopping the servers and removing the sandbox (Ctrl-C again exits at once)",
            signal.name()
        );
        tokio::spawn(async move {
            let mut said = false;
            loop {
                let again = signals.next().await;
                // Only a person presses Ctrl-C twice. SIGTERM and SIGHUP come again from
                // supervisors and from clients that signal their whole process group on
                // shutdown; the teardown is short, so it goes on (SIGKILL still stops it).
                if again == Signal::Interrupt {
                    crate::output::status!("SIGINT: exiting without finishing the teardown");
                    std::process::exit(again.exit_status() as i32);
                }
                if !said {
                    crate::output::status!("{}: the teardown goes on", again.name());
                    said = true;
                }
            }
        });
    }
    let keep = context.keep && result.is_ok();
    // The end goes on disk before the teardown: a client's SIGKILL may follow its signal
    // (or its EOF) within milliseconds.
    let ending = ending(&result, keep, context.done);
    if let Err(error) = session.record_end(ending.status, ending.reason, ending.exit as i32) {
        crate::output::status!(
            "warning: cannot write the session record `{}`: {error}",
            session.dir.join(crate::session::RECORD_FILE).display()
        );
    }
    let left = teardown(session, context, &mut servers, &mut watches, keep).await;
    let names = left.iter().map(|(name, _)| name.clone()).collect();
    if let Err(error) = session.record_teardown(names) {
        crate::output::status!(
            "warning: cannot write the session record `{}`: {error}",
            session.dir.join(crate::session::RECORD_FILE).display()
        );
    }
    if left.is_empty() {
        return result;
    }
    let mut error = Error::new(format!(
        "the teardown left {} container(s) or network(s) behind",
        left.len()
    ));
    for (name, why) in &left {
        error = error.cause(format!("`{name}`: {why}"));
    }
    let (networks, containers): (Vec<&str>, Vec<&str>) = left
        .iter()
        .map(|(n, _)| n.as_str())
        .partition(|n| session.record.egress.values().any(|e| e.network == *n));
    let mut how = Vec::new();
    if !containers.is_empty() {
        how.push(format!("`podman rm --force {}`", containers.join(" ")));
    }
    if !networks.is_empty() {
        how.push(format!(
            "`podman network rm --force {}`",
            networks.join(" ")
        ));
    }
    let error = redacted(
        error.hint(format!(
            "remove {} with {} (or `outrig clean`)",
            if left.len() == 1 { "it" } else { "them" },
            how.join(" and ")
        )),
        &context.redactor,
    );
    match result {
        // A signal's exit status stands; the leftovers are said on stderr.
        Err(Stop::Interrupted(signal)) => {
            crate::output::stderr(&error.render());
            Err(Stop::Interrupted(signal))
        }
        _ => Err(Stop::Failed(error)),
    }
}

/// The servers that answered, in plan order.
fn backends(plan: &Plan, session: &Session, servers: &[RunningServer]) -> Vec<Backend> {
    servers
        .iter()
        .filter_map(|server| {
            let spec = plan.desired.servers.get(&server.key)?;
            let connection = server.connection.as_ref()?;
            Some(Backend {
                key: server.key.clone(),
                server: spec.name.clone(),
                calls: connection.direct(),
                tools: server.tools.iter().map(|l| l.tool.clone()).collect(),
                raw_tools: server
                    .tools
                    .iter()
                    .map(|l| (l.tool.name.to_string(), l.raw.clone()))
                    .collect(),
                peer: Some(connection.peer()),
                capabilities: connection.capabilities(),
                call_timeout: Duration::from_millis(spec.call_timeout_ms),
                stderr_log: session
                    .record
                    .servers
                    .get(&server.key)
                    .map(|r| r.stderr_log.clone())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn progress(address: &str, message: &str) {
    crate::output::status!("  {address}: {message}");
}

/// An error with every secret value taken out.
fn redacted(error: Error, redactor: &Redactor) -> Error {
    Error {
        message: redactor.redact(&error.message),
        causes: error.causes.iter().map(|c| redactor.redact(c)).collect(),
        hint: error.hint.as_deref().map(|h| redactor.redact(h)),
        details: error.details.iter().map(|d| redactor.redact(d)).collect(),
    }
}

/// Run one podman command as a recorded step.
async fn step<T>(
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
async fn run_step(
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
fn end_step(session: &mut Session, index: usize, elapsed: Duration, error: Option<&String>) {
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
fn stderr_log_name(key: &str) -> String {
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

async fn run_blocking(
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

async fn run_steps(
    plan: &Plan,
    session: &mut Session,
    context: &Context<'_>,
    servers: &mut Vec<RunningServer>,
    watches: &mut Vec<Watch>,
) -> Result<(), Error> {
    let desired = &plan.desired;
    let mut binding = Binding {
        session_id: session.record.id.clone(),
        session_dir: session.dir.display().to_string(),
        ..Default::default()
    };
    // Servers start together once everything else is in place.
    let mut launches: Vec<Launch> = Vec::new();
    // Egress proxies started, by image: their sandbox's probes run once it runs.
    let mut proxies: std::collections::BTreeMap<String, crate::plan::desired::ProxyCommands> =
        Default::default();
    // Servers started in a kept sandbox (`outrig mcp --attach`) use its kept proxy.
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
        let egress = desired
            .sandboxes
            .get(image)
            .is_some_and(|s| !s.network.destinations().is_empty());
        if egress && !binding.addresses.contains_key(&placeholder) {
            let (inside, outside) = proxy_addresses(
                context,
                &format!("{container}-proxy"),
                &format!("{container}-egress"),
            )
            .await
            .map_err(|e| {
                e.hint("the kept sandbox's proxy must still run: `outrig destroy` and apply again")
            })?;
            binding.addresses.insert(placeholder, inside);

            binding.addresses.insert(
                crate::plan::desired::proxy_outside_placeholder(image),
                outside,
            );
        }
    }
    for planned in &plan.steps {
        let Some(operation) = &planned.operation else {
            continue;
        };
        let address = planned.address.to_string();
        let address = address.as_str();
        let command = operation.command().bind(&binding);
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
                progress(address, "starting");
                let name = container.bind(&binding);
                // Recorded before it starts, so a crash still names what to clean up.
                session.record.containers.insert(
                    image.clone(),
                    ContainerRecord {
                        name,
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
                // From here the sandbox ends with outrig, however outrig ends.
                let watch = watch.bind(&binding);
                let watcher = context.runtime.start_watch(&watch).map_err(|e| {
                    redacted(
                        e.error(format!("`{address}`: cannot start the sandbox's watcher")),
                        &context.redactor,
                    )
                })?;
                watches.push(watcher);
                if let Some(commands) = proxies.get(image) {
                    prove_egress(session, context, address, image, commands, &binding).await?;
                }
            }
            Operation::RunProxy {
                image,
                container,
                network,
                commands,
            } => {
                progress(address, "starting the egress proxy");
                let network = network.bind(&binding);
                session.record.egress.insert(
                    image.clone(),
                    crate::session::EgressRecord {
                        network: network.clone(),
                        network_removed: false,
                        proxy_address: String::new(),
                        probes: Vec::new(),
                    },
                );
                run_step(
                    session,
                    context,
                    address,
                    planned.action,
                    commands.network.bind(&binding),
                )
                .await?;
                let name = container.bind(&binding);
                session.record.containers.insert(
                    proxy_key(image),
                    ContainerRecord {
                        name: name.clone(),
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
                    .start_watch(&commands.watch.bind(&binding))
                    .map_err(|e| {
                        e.error(format!("`{address}`: cannot start the proxy's watcher"))
                    })?;
                watches.push(watcher);
                let (inside, outside) = proxy_addresses(context, &name, &network).await?;
                binding.addresses.insert(
                    crate::plan::desired::proxy_placeholder(image),
                    inside.clone(),
                );
                binding.addresses.insert(
                    crate::plan::desired::proxy_outside_placeholder(image),
                    outside,
                );
                if let Some(record) = session.record.egress.get_mut(image) {
                    record.proxy_address = format!("{inside}:{}", crate::egress::PROXY_PORT);
                }
                let _ = session.save();
                follow_egress_log(context, session, image, &name);
                proxies.insert(image.clone(), (**commands).clone());
            }
            Operation::StartServer {
                container,
                secrets,
                transport,
                ..
            } => {
                let Address::Server { image, server } = &planned.address else {
                    return Err(Error::new(format!(
                        "`{address}` starts a server but is not a server's address"
                    )));
                };
                let key = format!("{image}.{server}");
                let log_name = stderr_log_name(&key);
                let prepared = (|| {
                    let spec = desired.servers.get(&key).ok_or_else(|| {
                        Error::new(format!("`{address}` is not in the plan's desired state"))
                    })?;
                    let command = with_secrets(command, secrets, context)?;
                    let log = std::fs::File::create(session.log_path(&log_name)).map_err(|e| {
                        Error::new("cannot create a server log").cause(e.to_string())
                    })?;
                    Ok((spec, command, log))
                })();
                let (spec, command, log) = match prepared {
                    Ok(prepared) => prepared,
                    Err(error) => {
                        let not_started = format!("not started: `{address}` failed");
                        for launch in &launches {
                            end_step(session, launch.step, Duration::ZERO, Some(&not_started));
                        }
                        return Err(error);
                    }
                };
                progress(address, "starting");
                launches.push(Launch {
                    step: begin_step(session, address, planned.action, Some(&command)),
                    key,
                    container: container.bind(&binding),
                    command,
                    transport: *transport,
                    log,
                    stderr_log: session.log_path(&log_name),
                    startup: Duration::from_millis(spec.startup_timeout_ms),
                    max_message: spec.result_max_bytes as usize,
                });
            }
        }
    }
    start_servers(session, context, launches, servers).await
}

/// The key of a sandbox's proxy among the session's containers.
fn proxy_key(image: &str) -> String {
    format!("proxy.{image}")
}

/// A proxy that could not start: its image is missing (say how to get it), or rootless
/// podman cannot give containers a network here (say what it needs).
fn proxy_error(error: Error, commands: &crate::plan::desired::ProxyCommands) -> Error {
    let text = error.render();
    if [
        "/dev/net/tun",
        "slirp4netns failed",
        "pasta failed",
        "rootless netns",
    ]
    .iter()
    .any(|symptom| text.contains(symptom))
    {
        return error
            .cause("this rootless podman cannot give containers a network (its network helper, slirp4netns or pasta, failed)")
            .hint("an egress list needs a network for the proxy: make /dev/net/tun usable by your user (or install pasta), or use rootful podman; `network = \"none\"` needs neither");
    }
    if !(text.contains("image not known") || text.contains("no such image")) {
        return error;
    }
    let image = &commands.proxy_image;
    error
        .cause(format!(
            "the egress proxy's image `{image}` is not in podman's store"
        ))
        .hint(
            "build it with `scripts/setup-podman.sh` (Squid from the Debian mirror), or point \
         `[engine] proxy-image` at an image with Squid, bash and getent",
        )
}

/// The proxy's addresses on the sandbox's internal network and on podman's default one.
async fn proxy_addresses(
    context: &Context<'_>,
    container: &str,
    network: &str,
) -> Result<(String, String), Error> {
    let inspect = PodmanCommand::new(context.engine.podman.clone(), &context.engine.global_args)
        .args(["container", "inspect", "--format", "json", container]);
    let stdout = run_blocking(&context.runtime, inspect)
        .await
        .map_err(|e| Error::new("cannot read the egress proxy's addresses").cause(e))?;
    let json: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        Error::new("cannot read the egress proxy's addresses")
            .cause(format!("podman container inspect printed no JSON: {e}"))
    })?;
    let networks = &json[0]["NetworkSettings"]["Networks"];
    let address = |name: &str| {
        networks[name]["IPAddress"]
            .as_str()
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    };
    match (address(network), address("podman")) {
        (Some(inside), Some(outside)) => Ok((inside, outside)),
        _ => Err(Error::new("the egress proxy has no address on its networks")
            .cause(format!(
                "podman reports no IP address for `{container}` on `{network}` and `podman`"
            ))
            .hint("rootless podman needs a network stack for containers (slirp4netns or pasta, and /dev/net/tun); `podman run --network podman` must work")),
    }
}

/// Copy the proxy's log into `logs/egress.jsonl` as it is written, one event per request;
/// anything else the proxy says goes to `logs/proxy-<image>.log`.
fn follow_egress_log(context: &Context<'_>, session: &Session, image: &str, container: &str) {
    let follow = PodmanCommand::new(context.engine.podman.clone(), &context.engine.global_args)
        .args(["logs", "--follow", container]);
    let events = session.log_path("egress.jsonl");
    let other = session.log_path(&format!("proxy-{image}.log"));
    let runtime = context.runtime.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let open = |path: &std::path::Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let (Ok(mut events), Ok(mut other)) = (open(&events), open(&other)) else {
            return;
        };
        let _ = runtime.run_lines(
            &follow,
            &mut |line: &str| match crate::egress::parse_log_line(line) {
                Some(event) => {
                    if let Ok(text) = serde_json::to_string(&event) {
                        let _ = writeln!(events, "{text}");
                    }
                }
                None => {
                    let _ = writeln!(other, "{line}");
                }
            },
        );
    });
}

/// A session that served from a kept sandbox (`outrig mcp --attach`) copies what the kept
/// egress proxy logged while it ran into its own `logs/egress.jsonl`, once its servers
/// are stopped.
async fn copy_kept_egress_log(session: &Session, context: &Context<'_>) {
    let Some(container) = &session.record.attached_to else {
        return;
    };
    let egress = session
        .record
        .desired
        .as_ref()
        .and_then(|d| d.get("sandboxes"))
        .and_then(|s| s.as_object())
        .is_some_and(|sandboxes| sandboxes.values().any(|s| s["network"]["mode"] == "egress"));
    if !egress {
        return;
    }
    let logs = PodmanCommand::new(context.engine.podman.clone(), &context.engine.global_args)
        .args(["logs", "--since", &session.record.started_at])
        .arg(format!("{container}-proxy"));
    let Ok(output) = run_blocking(&context.runtime, logs).await else {
        return;
    };
    let lines: Vec<String> = output
        .lines()
        .filter_map(crate::egress::parse_log_line)
        .filter_map(|event| serde_json::to_string(&event).ok())
        .collect();
    if !lines.is_empty() {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(session.log_path("egress.jsonl"))
        {
            let _ = writeln!(file, "{}", lines.join("\n"));
        }
    }
}

/// Prove the sandbox's allow-list before any server starts: from the sandbox's network
/// namespace, a listed destination is reached through the proxy, an unlisted one is
/// refused, and the proxy cannot be bypassed. Any probe that disagrees fails the apply.
async fn prove_egress(
    session: &mut Session,
    context: &Context<'_>,
    address: &str,
    image: &str,
    commands: &crate::plan::desired::ProxyCommands,
    binding: &Binding,
) -> Result<(), Error> {
    progress(address, "proving the egress allow-list");
    let probe_address = format!("{address}.probe");
    let output = run_step(
        session,
        context,
        &probe_address,
        Action::Create,
        commands.probe.bind(binding),
    )
    .await?;
    let probes = crate::egress::read_probes(
        &output,
        &commands.listed,
        &commands.unlisted,
        commands.reach_required,
    );
    let failed: Vec<String> = probes
        .iter()
        .filter(|p| !p.passed)
        .map(|p| format!("{}: `{}` got {}", p.kind.promise(), p.target, p.observed))
        .collect();
    if let Some(record) = session.record.egress.get_mut(image) {
        record.probes = probes;
    }
    let _ = session.save();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::new(format!(
        "`{address}`: the egress allow-list did not hold, so nothing was started"
    ))
    .cause(failed.join("\n"))
    .hint(
        "a listed destination that cannot be reached is reported too: check the name, the \
         port and this machine's network; the probes are in session.json",
    ))
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

/// A server to start, its step already recorded as running.
struct Launch {
    /// Its step's index in the session record.
    step: usize,
    key: String,
    container: String,
    command: PodmanCommand,
    transport: crate::podman::runtime::Transport,
    log: std::fs::File,
    stderr_log: std::path::PathBuf,
    startup: Duration,
    max_message: usize,
}

type Started = (
    crate::podman::runtime::Exit,
    Connection,
    Vec<crate::mcp::client::Listed>,
);

/// Start every server at once and wait for all of them, recording each step as it ends.
/// The ones that answered join `servers` (so teardown stops them) even when another
/// failed; the first failure in plan order is the error.
async fn start_servers(
    session: &mut Session,
    context: &Context<'_>,
    launches: Vec<Launch>,
    servers: &mut Vec<RunningServer>,
) -> Result<(), Error> {
    let mut starting = tokio::task::JoinSet::new();
    let mut waiting = Vec::new();
    for (index, launch) in launches.into_iter().enumerate() {
        let started = Instant::now();
        let (command, transport) = (launch.command, launch.transport);
        let (log, stderr_log) = (launch.log, launch.stderr_log);
        let (startup, max_message) = (launch.startup, launch.max_message);
        let runtime = context.runtime.clone();
        let redactor = context.redactor.clone();
        let relay = crate::mcp::relay::Relay {
            server: launch.key.clone(),
            hub: context.hub.clone(),
        };
        starting.spawn(async move {
            let result = start_server(
                &*runtime,
                (command, transport),
                log,
                &stderr_log,
                (startup, max_message),
                relay,
            )
            .await
            .map_err(|message| redactor.redact(&message));
            (index, started.elapsed(), result)
        });
        waiting.push((launch.step, launch.key, launch.container));
    }
    let mut results: Vec<Option<Result<Started, String>>> = waiting.iter().map(|_| None).collect();
    while let Some(joined) = starting.join_next().await {
        let (index, elapsed, result) = match joined {
            Ok(done) => done,
            Err(error) => {
                return Err(Error::new("a server start was lost").cause(error.to_string()));
            }
        };
        let step = waiting[index].0;
        end_step(session, step, elapsed, result.as_ref().err());
        if let Ok((_, connection, tools)) = &result {
            let names: Vec<&str> = tools.iter().map(|t| t.tool.name.as_ref()).collect();
            progress(
                &session.record.steps[step].address,
                &format!(
                    "done in {:.1} s: protocol {}, {} tools: {}",
                    elapsed.as_secs_f64(),
                    connection.protocol_version,
                    tools.len(),
                    names.join(", ")
                ),
            );
        }
        results[index] = Some(result);
    }
    let mut failure = None;
    for ((step, key, container), result) in waiting.into_iter().zip(results) {
        match result.expect("every start was joined") {
            Ok((exit, connection, tools)) => {
                session.record.servers.insert(
                    key.clone(),
                    ServerRecord {
                        protocol_version: connection.protocol_version.clone(),
                        server_name: connection.server.as_ref().map(|s| s.0.clone()),
                        server_version: connection.server.as_ref().map(|s| s.1.clone()),
                        tools: tools
                            .iter()
                            .map(|listed| ToolRecord {
                                name: listed.tool.name.to_string(),
                                definition_hash: short_hash(
                                    serde_json::to_string(&listed.tool)
                                        .unwrap_or_default()
                                        .as_bytes(),
                                ),
                                definition: Some(definition(listed, &context.redactor)),
                            })
                            .collect(),
                        offers: Some(crate::mcp::surface::offers(&connection.capabilities())),
                        stderr_log: format!("logs/{}", stderr_log_name(&key)),
                        exited: None,
                    },
                );
                servers.push(RunningServer {
                    key,
                    container,
                    exit,
                    connection: Some(connection),
                    tools,
                });
            }
            Err(message) => {
                let address = &session.record.steps[step].address;
                failure.get_or_insert_with(|| {
                    Error::new(format!("`{address}` failed")).cause(message)
                });
            }
        }
    }
    let _ = session.save();
    failure.map_or(Ok(()), Err)
}

/// A tool's definition in the lock's canonical form, secret values taken out.
fn definition(listed: &crate::mcp::client::Listed, redactor: &Redactor) -> String {
    // As the server wrote it: what the gateway serves, fields rmcp does not model included.
    let value = if listed.raw.is_empty() {
        serde_json::to_value(&listed.tool).unwrap_or_default()
    } else {
        serde_json::Value::Object(listed.raw.clone())
    };
    crate::lock::canonical(&redactor.redact_json(&value))
}

/// Start one server and prove it answers: the MCP handshake and its tool list, within
/// `startup`.
async fn start_server(
    runtime: &dyn Runtime,
    (command, transport): (PodmanCommand, crate::podman::runtime::Transport),
    log: std::fs::File,
    stderr_log: &std::path::Path,
    (startup, max_message): (Duration, usize),
    relay: crate::mcp::relay::Relay,
) -> Result<Started, String> {
    let started = tokio::time::timeout(startup, runtime.start_server(&command, transport, log))
        .await
        .map_err(|_| {
            format!(
                "podman did not start the server within {:.1} s",
                startup.as_secs_f64()
            )
        })?;
    let crate::podman::runtime::Server {
        stdin,
        stdout,
        mut exit,
    } = started.map_err(|e| {
        let mut message = e.to_string();
        if message.contains("\"sh\": executable file not found") {
            message.push_str(
                "\nhint: outrig starts each server through `/bin/sh` in its sandbox; \
                 add a shell to the image",
            );
        }
        message
    })?;
    let connection =
        match client::connect_relaying(stdout, stdin, startup, max_message, relay).await {
            Ok(connection) => connection,
            Err(error) => {
                let exited = tokio::time::timeout(Duration::from_millis(500), exit.wait()).await;
                let status = match exited {
                    Ok(Some(status)) => format!(" (the server exited with status {status})"),
                    Ok(None) => " (the server exited)".to_string(),
                    Err(_) => String::new(),
                };
                let tail = std::fs::read_to_string(stderr_log).unwrap_or_default();
                let tail = crate::podman::runtime::tail(&tail, 15);
                return Err(format!("{error}{status}\n--- stderr\n{tail}"));
            }
        };
    let tools = connection
        .list_tools(startup)
        .await
        .map_err(|e| e.to_string())?;
    Ok((exit, connection, tools))
}

/// Stop the servers (close stdin, wait, then kill inside the container) and remove the
/// sandboxes (unless `keep`); the sandboxes that could not be removed, with why. Its podman
/// commands run in their own process group, so a signal to outrig's group does not stop
/// them halfway.
async fn teardown(
    session: &mut Session,
    context: &Context<'_>,
    servers: &mut Vec<RunningServer>,
    watches: &mut Vec<Watch>,
    keep: bool,
) -> Vec<(String, String)> {
    let base = PodmanCommand::new(context.engine.podman.clone(), &context.engine.global_args)
        .in_own_process_group();
    let runtime = &context.runtime;
    for server in servers.iter_mut() {
        if let Some(connection) = server.connection.take() {
            connection.close().await;
        }
    }
    // Sandboxes that go: their first process, stopped by `podman rm --time`, waits for the
    // servers to exit on their own (see `SANDBOX_SCRIPT`), so the two overlap.
    let removed_here: std::collections::BTreeSet<String> = if keep {
        Default::default()
    } else {
        session
            .record
            .containers
            .values()
            .map(|c| c.name.clone())
            .collect()
    };
    // Servers in a sandbox that stays (kept, or attached to) are stopped one by one, as
    // MCP's stdio shutdown says and as the sandbox's own first process does: 100 ms to exit
    // after EOF, then SIGTERM, then SIGKILL once the two seconds are up.
    let started = tokio::time::Instant::now();
    let mut staying: Vec<&mut RunningServer> = servers
        .iter_mut()
        .filter(|s| !removed_here.contains(&s.container))
        .collect();
    for (signal, until) in [
        (None, SERVER_EOF_GRACE),
        (Some("TERM"), SERVER_EXIT_GRACE),
        (Some("KILL"), SERVER_EXIT_GRACE),
    ] {
        let deadline = started + until;
        let mut left = Vec::new();
        for server in staying {
            if let Some(signal) = signal {
                let script = format!(
                    "for p in /proc/[0-9]*; do if tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -qx '{}'; then kill -{signal} ${{p#/proc/}}; fi; done",
                    server_marker(&server.key, &session.record.id)
                );
                let _ = run_blocking(
                    runtime,
                    base.clone()
                        .args(["exec", &server.container, "sh", "-c", &script]),
                )
                .await;
            }
            if tokio::time::timeout_at(deadline, server.exit.wait())
                .await
                .is_err()
            {
                left.push(server);
            }
        }
        staying = left;
        if staying.is_empty() {
            break;
        }
    }
    servers.clear();
    copy_kept_egress_log(session, context).await;
    if keep {
        for watch in watches.iter_mut() {
            watch.release(WATCH_EXIT_GRACE).await;
        }
        watches.clear();
        return Vec::new();
    }
    let names: Vec<(String, String)> = session
        .record
        .containers
        .iter()
        .map(|(k, c)| (k.clone(), c.name.clone()))
        .collect();
    // Sandboxes are removed side by side, then their egress proxies (the servers' way
    // out stays until the servers are gone).
    let mut left = Vec::new();
    for proxies in [false, true] {
        let mut removals = tokio::task::JoinSet::new();
        for (key, name) in names
            .iter()
            .filter(|(key, _)| key.starts_with("proxy.") == proxies)
            .cloned()
        {
            let remove = base.clone().args([
                "rm",
                "--force",
                "--ignore",
                "--time",
                SANDBOX_STOP_TIME,
                &name,
            ]);
            let exists = base.clone().args(["container", "exists", &name]);
            let runtime = runtime.clone();
            removals.spawn(async move {
                let mut removed = run_blocking(&runtime, remove.clone()).await;
                // The sandbox may be stopping on its own (its watcher's pipe just closed),
                // which `podman rm` can trip over ("container state improper"): ask again.
                let mut attempt = 1;
                while let Err(why) = &removed {
                    if already_gone(why) {
                        removed = Ok(String::new());
                    } else if attempt < REMOVE_ATTEMPTS {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        removed = run_blocking(&runtime, remove.clone()).await;
                    } else {
                        break;
                    }
                }
                // What counts is that it is gone: an engine that failed to answer `rm`
                // (a busy remote service) may have removed it all the same.
                if removed.is_err() {
                    let exists = exists.clone();
                    let runtime = runtime.clone();
                    let gone = tokio::task::spawn_blocking(
                        move || matches!(runtime.run(&exists), Err(e) if e.status == Some(1)),
                    )
                    .await
                    .unwrap_or(false);
                    if gone {
                        removed = Ok(String::new());
                    }
                }
                (key, name, removed)
            });
        }
        while let Some(joined) = removals.join_next().await {
            let Ok((key, name, removed)) = joined else {
                continue;
            };
            if let Err(why) = &removed {
                left.push((name.clone(), why.clone()));
            }
            if let Some(record) = session.record.containers.get_mut(&key) {
                record.removed = removed.is_ok();
            }
        }
    }
    left.sort();
    for watch in watches.iter_mut() {
        watch.close();
        watch.wait(WATCH_EXIT_GRACE).await;
    }
    watches.clear();
    // The sandboxes' internal networks, once nothing is on them.
    let networks: Vec<(String, String)> = session
        .record
        .egress
        .iter()
        .filter(|(_, e)| !e.network_removed)
        .map(|(image, e)| (image.clone(), e.network.clone()))
        .collect();
    for (image, network) in networks {
        let remove = base.clone().args(["network", "rm", "--force", &network]);
        let removed = match run_blocking(runtime, remove).await {
            Err(why)
                if !why.contains("network not found")
                    && !why.contains("unable to find network") =>
            {
                Err(why)
            }
            _ => Ok(()),
        };
        match removed {
            Ok(()) => {
                if let Some(record) = session.record.egress.get_mut(&image) {
                    record.network_removed = true;
                }
            }
            Err(why) => left.push((network.clone(), why)),
        }
    }
    let _ = session.save();
    left
}

/// How long servers have to exit on their own once their stdin closed, before SIGTERM.
const SERVER_EOF_GRACE: Duration = Duration::from_millis(100);

/// How long the servers in a sandbox that stays have, together, to exit once their stdin
/// closed, before SIGKILL.
const SERVER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Seconds `podman rm` gives a sandbox's first process to end before it kills everything:
/// more than the servers' grace in [`crate::plan::desired::SANDBOX_SCRIPT`].
const SANDBOX_STOP_TIME: &str = "3";

/// How many times teardown asks podman to remove a sandbox.
const REMOVE_ATTEMPTS: usize = 3;

/// How long a watcher has to end once told to.
const WATCH_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Whether `podman rm` failed only because the container went away meanwhile (its
/// watcher stopped it and `--rm` removed it first).
fn already_gone(why: &str) -> bool {
    ["no such container", "does not exist in database"]
        .iter()
        .any(|symptom| why.contains(symptom))
}

pub mod pin;

#[cfg(test)]
mod tests;
