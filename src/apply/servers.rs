//! Starting a sandbox's MCP servers together and proving each answers (the handshake and
//! its tool list), and handing those that answered to the session's work.

use std::time::{Duration, Instant};

use crate::digest::short_hash;
use crate::error::Error;
use crate::mcp::Backend;
use crate::mcp::client::{self, Connection};
use crate::plan::Plan;
use crate::podman::{PodmanCommand, Runtime};
use crate::secret::Redactor;
use crate::session::{ServerRecord, Session, ToolRecord};

use super::record::{end_step, stderr_log_name};
use super::{Context, progress};

/// A server started for the session.
pub(super) struct RunningServer {
    pub(super) key: String,
    /// The container it runs in.
    pub(super) container: String,
    pub(super) exit: crate::podman::runtime::Exit,
    pub(super) connection: Option<Connection>,
    pub(super) tools: Vec<crate::mcp::client::Listed>,
}

/// The servers that answered, in plan order.
pub(super) fn backends(plan: &Plan, session: &Session, servers: &[RunningServer]) -> Vec<Backend> {
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

/// A server to start, its step already recorded as running.
pub(super) struct Launch {
    /// Its step's index in the session record.
    pub(super) step: usize,
    pub(super) key: String,
    pub(super) container: String,
    pub(super) command: PodmanCommand,
    pub(super) transport: crate::podman::runtime::Transport,
    pub(super) log: std::fs::File,
    pub(super) stderr_log: std::path::PathBuf,
    pub(super) startup: Duration,
    pub(super) max_message: usize,
}

type Started = (
    crate::podman::runtime::Exit,
    Connection,
    Vec<crate::mcp::client::Listed>,
);

/// Start every server at once and wait for all of them, recording each step as it ends.
/// The ones that answered join `servers` (so teardown stops them) even when another
/// failed; the first failure in plan order is the error.
pub(super) async fn start_servers(
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
pub(super) fn definition(listed: &crate::mcp::client::Listed, redactor: &Redactor) -> String {
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
