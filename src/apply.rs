//! Carrying out a plan: build and pull images, remove orphans, start the sandbox, start
//! every MCP server in it and prove it answers, record everything in the session, and tear
//! down (unless kept). Runs podman only through [`crate::podman::Runtime`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::resolve::Engine;
use crate::error::Error;
use crate::mcp::client::{self, Connection};
use crate::plan::desired::{Value, resolve_template, short_hash};
use crate::plan::{Action, Plan};
use crate::podman::{PodmanCommand, Runtime};
use crate::session::{
    ContainerRecord, ServerRecord, Session, StepRecord, StepStatus, ToolRecord, now,
};

/// A server started for the session.
struct RunningServer {
    key: String,
    /// The container it runs in.
    container: String,
    exit: crate::podman::runtime::Exit,
    connection: Option<Connection>,
    tools: Vec<rmcp::model::Tool>,
}

/// A server that answered, handed to what runs in the session (the gateway, the agent).
#[derive(Clone)]
pub struct Backend {
    /// `<image>.<server>`.
    pub key: String,
    /// The server's name in the config.
    pub server: String,
    /// Where its tools are called.
    pub calls: std::sync::Arc<crate::mcp::transport::Direct>,
    /// Its tools as it listed them.
    pub tools: Vec<rmcp::model::Tool>,
    pub call_timeout: Duration,
    /// Where its stderr goes, relative to the session directory.
    pub stderr_log: String,
}

/// What apply needs besides the plan.
pub struct Context<'a> {
    pub engine: &'a Engine,
    pub root: &'a std::path::Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Leave the sandbox running after the servers were proven.
    pub keep: bool,
    /// A kept sandbox to start the servers in (`outrig mcp --attach`): image and container
    /// name. It is never removed by this session.
    pub attach: Option<(String, String)>,
    /// While set, SIGINT is left to the work (the agent's REPL cancels a turn with it).
    pub interrupts_handled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Why an apply stopped before finishing.
#[derive(Debug)]
pub enum Stop {
    Failed(Error),
    Interrupted(Signal),
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

    pub fn exit_status(self) -> crate::error::ExitStatus {
        match self {
            Signal::Interrupt => crate::error::ExitStatus::Interrupted,
            Signal::Terminate => crate::error::ExitStatus::Terminated,
            Signal::HangUp => crate::error::ExitStatus::HungUp,
        }
    }
}

/// Listeners for SIGINT, SIGTERM and SIGHUP.
struct Signals {
    /// While set, SIGINT is not ours.
    pass_interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hang_up: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            pass_interrupt: None,
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hang_up: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        loop {
            let signal = tokio::select! {
                _ = self.interrupt.recv() => Signal::Interrupt,
                _ = self.terminate.recv() => Signal::Terminate,
                _ = self.hang_up.recv() => Signal::HangUp,
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
/// SIGTERM or SIGHUP — what was started is torn down (unless kept after success) before
/// returning. A second signal during teardown exits at once.
pub async fn apply<W>(
    plan: &Plan,
    session: &mut Session,
    context: &Context<'_>,
    work: W,
) -> Result<(), Stop>
where
    W: AsyncFnOnce(&mut Session, Vec<Backend>) -> Result<(), Error>,
{
    let mut signals = Signals::new()
        .map_err(|e| Stop::Failed(Error::new("cannot listen for signals").cause(e.to_string())))?;
    signals.pass_interrupt = context.interrupts_handled.clone();
    let mut servers: Vec<RunningServer> = Vec::new();
    let result = tokio::select! {
        // A signal that arrives with the work's end (a client's EOF) still counts.
        biased;
        signal = signals.next() => Err(Stop::Interrupted(signal)),
        result = async {
            run_steps(plan, session, context, &mut servers).await?;
            let backends = backends(plan, session, &servers);
            work(session, backends).await
        } => result.map_err(Stop::Failed),
    };
    if let Err(Stop::Interrupted(signal)) = &result {
        anstream::eprintln!(
            "\n{}: stopping the servers and removing the sandbox (send it again to exit at once)",
            signal.name()
        );
        tokio::spawn(async move {
            let again = signals.next().await;
            anstream::eprintln!("{}: exiting without finishing the teardown", again.name());
            std::process::exit(again.exit_status() as i32);
        });
    }
    let keep = context.keep && result.is_ok();
    teardown(session, context, &mut servers, keep).await;
    result
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
                tools: server.tools.clone(),
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
    anstream::eprintln!("  {address}: {message}");
}

/// Run one podman command as a recorded step.
async fn step<T>(
    session: &mut Session,
    address: &str,
    action: Action,
    command: Option<&PodmanCommand>,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, Error> {
    let started = Instant::now();
    let index = begin_step(session, address, action, command);
    let result = work.await;
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

/// Record a step as running; its index in the record.
fn begin_step(
    session: &mut Session,
    address: &str,
    action: Action,
    command: Option<&PodmanCommand>,
) -> usize {
    session.record.steps.push(StepRecord {
        address: address.to_string(),
        action: format!("{action:?}").to_lowercase(),
        command: command.map(|c| c.to_string()),
        status: StepStatus::Running,
        started_at: now(),
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

/// The variable that marks server `key`'s processes inside the sandbox, so teardown finds
/// this session's own (several sessions may run servers in one kept sandbox).
fn server_marker(key: &str, session_id: &str) -> String {
    format!("OUTRIG_SERVER={key}@{session_id}")
}

/// A server's stderr log, relative to the session's `logs/`.
fn stderr_log_name(key: &str) -> String {
    format!("{key}.stderr")
}

/// Put secret values on the command's process environment (never its arguments).
fn with_secrets(
    mut command: PodmanCommand,
    values: &BTreeMap<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PodmanCommand, String> {
    for (name, value) in values {
        if let Value::Secret { template, .. } = value {
            let resolved = resolve_template(template, env)
                .ok_or_else(|| format!("a variable in `{name}` ({template}) is not set"))?;
            command.process_env.push((name.clone(), resolved));
        }
    }
    Ok(command)
}

async fn run_blocking(command: PodmanCommand) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        Runtime
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
) -> Result<(), Error> {
    let desired = &plan.desired;
    let base = PodmanCommand::new(context.engine.podman.clone(), &context.engine.global_args);
    let session_id = session.record.id.clone();
    // Servers start together once everything else is in place.
    let mut launches: Vec<Launch> = Vec::new();
    for planned in &plan.steps {
        let address = planned.address.as_str();
        if let Some(name) = address.strip_prefix("image.") {
            let image = &desired.images[name];
            match (planned.action, &image.build) {
                (Action::Create | Action::Replace, Some(build)) => {
                    let command = desired
                        .build_command(context.engine, context.root, image)
                        .expect("a built image has a build command");
                    let command = with_secrets(command, &build.build_args, context.env)
                        .map_err(Error::new)?;
                    let log = session.log_path(&format!("build-{name}.log"));
                    progress(address, &format!("building (log: {})", log.display()));
                    let shown = command.clone();
                    step(session, address, planned.action, Some(&shown), async move {
                        tokio::task::spawn_blocking(move || Runtime.run_logged(&command, &log))
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())
                    })
                    .await?;
                }
                (Action::Create, None) => {
                    let command = base.clone().args(["pull", &image.reference]);
                    progress(address, "pulling");
                    step(
                        session,
                        address,
                        planned.action,
                        Some(&command),
                        run_blocking(command.clone()),
                    )
                    .await?;
                }
                _ => {}
            }
        } else if address.starts_with("container.") && planned.action == Action::Remove {
            let name = address.trim_start_matches("container.");
            let command = base.clone().args(["rm", "--force", "--time", "0", name]);
            progress(address, "removing orphan");
            step(
                session,
                address,
                planned.action,
                Some(&command),
                run_blocking(command.clone()),
            )
            .await?;
        } else if let Some(image) = address.strip_prefix("sandbox.") {
            let mut command = desired
                .run_command(context.engine, image, &session_id)
                .expect("a planned sandbox has a run command");
            command.args.insert(1, "--label".into());
            command.args.insert(
                2,
                format!(
                    "{}={}",
                    crate::podman::labels::SESSION_DIR,
                    session.dir.display()
                ),
            );
            progress(address, "starting");
            let name = crate::plan::desired::container_name(&desired.project, image, &session_id);
            // Recorded before it starts, so a crash still names what to clean up.
            session.record.containers.insert(
                image.to_string(),
                ContainerRecord {
                    name: name.clone(),
                    id: String::new(),
                    image: desired.images[image].reference.clone(),
                    removed: false,
                },
            );
            let id = step(
                session,
                address,
                planned.action,
                Some(&command),
                run_blocking(command.clone()),
            )
            .await?;
            if let Some(record) = session.record.containers.get_mut(image) {
                record.id = id.trim().to_string();
            }
            let _ = session.save();
        } else if let Some(key) = address.strip_prefix("mcp.") {
            let server = &desired.servers[key];
            let log_name = stderr_log_name(key);
            let prepared = (|| {
                let container = match (
                    &context.attach,
                    session.record.containers.get(&server.image),
                ) {
                    (Some((image, name)), _) if *image == server.image => name.clone(),
                    (_, Some(record)) => record.name.clone(),
                    _ => {
                        return Err(Error::new(format!("`{address}` has no sandbox to run in")));
                    }
                };
                let mut command = desired
                    .exec_command(context.engine, key, &container)
                    .expect("a planned server has an exec command");
                // A marker to find the process inside the container at teardown.
                command.args.insert(2, "--env".into());
                command.args.insert(3, server_marker(key, &session_id));
                let command =
                    with_secrets(command, &server.env, context.env).map_err(Error::new)?;
                let log = std::fs::File::create(session.log_path(&log_name))
                    .map_err(|e| Error::new("cannot create a server log").cause(e.to_string()))?;
                Ok((container, command, log))
            })();
            let (container, command, log) = match prepared {
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
                key: key.to_string(),
                container,
                command,
                log,
                stderr_log: session.log_path(&log_name),
                startup: Duration::from_millis(server.startup_timeout_ms),
                max_message: server.result_max_bytes as usize,
            });
        }
    }
    start_servers(session, launches, servers).await
}

/// A server to start, its step already recorded as running.
struct Launch {
    /// Its step's index in the session record.
    step: usize,
    key: String,
    container: String,
    command: PodmanCommand,
    log: std::fs::File,
    stderr_log: std::path::PathBuf,
    startup: Duration,
    max_message: usize,
}

type Started = (
    crate::podman::runtime::Exit,
    Connection,
    Vec<rmcp::model::Tool>,
);

/// Start every server at once and wait for all of them, recording each step as it ends.
/// The ones that answered join `servers` (so teardown stops them) even when another
/// failed; the first failure in plan order is the error.
async fn start_servers(
    session: &mut Session,
    launches: Vec<Launch>,
    servers: &mut Vec<RunningServer>,
) -> Result<(), Error> {
    let mut starting = tokio::task::JoinSet::new();
    let mut waiting = Vec::new();
    for (index, launch) in launches.into_iter().enumerate() {
        let started = Instant::now();
        let command = launch.command;
        let (log, stderr_log) = (launch.log, launch.stderr_log);
        let (startup, max_message) = (launch.startup, launch.max_message);
        starting.spawn(async move {
            let result = start_server(command, log, &stderr_log, startup, max_message).await;
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
            let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
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
                            .map(|tool| ToolRecord {
                                name: tool.name.to_string(),
                                definition_hash: short_hash(
                                    serde_json::to_string(tool).unwrap_or_default().as_bytes(),
                                ),
                            })
                            .collect(),
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

/// Start one server and prove it answers: the MCP handshake and its tool list, within
/// `startup`.
async fn start_server(
    command: PodmanCommand,
    log: std::fs::File,
    stderr_log: &std::path::Path,
    startup: Duration,
    max_message: usize,
) -> Result<Started, String> {
    let started = tokio::time::timeout(startup, Runtime.start_server(&command, log))
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
    let connection = match client::connect(stdout, stdin, startup, max_message).await {
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

/// Stop servers (close stdin, wait, then kill inside the container) and remove the
/// sandbox containers unless `keep`.
async fn teardown(
    session: &mut Session,
    context: &Context<'_>,
    servers: &mut Vec<RunningServer>,
    keep: bool,
) {
    let base = PodmanCommand::new(context.engine.podman.clone(), &context.engine.global_args);
    for server in servers.iter_mut() {
        if let Some(connection) = server.connection.take() {
            connection.close().await;
        }
    }
    for server in servers.iter_mut() {
        let exited = tokio::time::timeout(Duration::from_secs(2), server.exit.wait()).await;
        if exited.is_err() {
            let script = format!(
                "for p in /proc/[0-9]*; do if tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -qx '{}'; then kill -KILL ${{p#/proc/}}; fi; done",
                server_marker(&server.key, &session.record.id)
            );
            let _ =
                run_blocking(
                    base.clone()
                        .args(["exec", &server.container, "sh", "-c", &script]),
                )
                .await;
        }
    }
    servers.clear();
    if keep {
        return;
    }
    let names: Vec<(String, String)> = session
        .record
        .containers
        .iter()
        .map(|(k, c)| (k.clone(), c.name.clone()))
        .collect();
    for (image, name) in names {
        let removed = run_blocking(base.clone().args(["rm", "--force", "--time", "0", &name]))
            .await
            .is_ok();
        if let Some(record) = session.record.containers.get_mut(&image) {
            record.removed = removed;
        }
    }
    let _ = session.save();
}
