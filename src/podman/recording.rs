//! A [`Runtime`] that records every command instead of running podman, for fast tests of
//! apply, teardown and their failure paths. Commands can be made to fail; a server start
//! hands back real pipes with a small in-process MCP server on their other end, which
//! answers the handshake and `tools/list` (or exits at once, or never answers), and ends
//! when its stdin closes, as a well-behaved server does.

use std::io::Write;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

use super::command::PodmanCommand;
use super::runtime::{Exit, Output, ProcessError, Runtime, Server, Starting, Transport, Watch};

/// What a fake server does once started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers the MCP handshake and lists these tools.
    Answer(Vec<String>),
    /// Writes this to its stderr and exits with status 1.
    Exit(String),
    /// Reads its stdin and answers nothing.
    Silent,
}

/// The recording runtime.
#[derive(Default)]
pub struct Recording {
    calls: Mutex<Vec<PodmanCommand>>,
    /// Commands whose argv contains the text fail with the stderr (so many times, or
    /// always when `None`).
    failures: Mutex<Vec<(String, String, Option<usize>)>>,
    /// Servers whose argv contains the text behave so (default: answer with `echo`).
    servers: Mutex<Vec<(String, Behaviour)>>,
    /// Called before a command whose argv contains the text is recorded (to look at the
    /// world as it stands at that moment).
    observers: Mutex<Vec<(String, Observer)>>,
}

/// What [`Recording::observe`] calls.
pub type Observer = Box<dyn Fn(&PodmanCommand) + Send + Sync>;

impl Recording {
    pub fn new() -> Recording {
        Recording::default()
    }

    /// Make every command whose argv contains `needle` fail with `stderr`.
    pub fn fail(self, needle: &str, stderr: &str) -> Recording {
        self.failures
            .lock()
            .unwrap()
            .push((needle.to_string(), stderr.to_string(), None));
        self
    }

    /// Make the first `times` commands whose argv contains `needle` fail with `stderr`.
    pub fn fail_times(self, needle: &str, stderr: &str, times: usize) -> Recording {
        self.failures
            .lock()
            .unwrap()
            .push((needle.to_string(), stderr.to_string(), Some(times)));
        self
    }

    /// Make the server whose command contains `needle` behave so.
    pub fn server(self, needle: &str, behaviour: Behaviour) -> Recording {
        self.servers
            .lock()
            .unwrap()
            .push((needle.to_string(), behaviour));
        self
    }

    /// Call `observer` before each command whose argv contains `needle` runs.
    pub fn observe(self, needle: &str, observer: Observer) -> Recording {
        self.observers
            .lock()
            .unwrap()
            .push((needle.to_string(), observer));
        self
    }

    /// Every command run so far.
    pub fn calls(&self) -> Vec<PodmanCommand> {
        self.calls.lock().unwrap().clone()
    }

    /// The podman subcommand and its first argument of each call: `run --detach`, ...
    pub fn summary(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| c.args.iter().take(2).cloned().collect::<Vec<_>>().join(" "))
            .collect()
    }

    fn record(&self, command: &PodmanCommand) -> Result<(), ProcessError> {
        let argv = command.argv().join(" ");
        for (needle, observer) in self.observers.lock().unwrap().iter() {
            if argv.contains(needle.as_str()) {
                observer(command);
            }
        }
        self.calls.lock().unwrap().push(command.clone());
        let mut failures = self.failures.lock().unwrap();
        let failure = failures
            .iter_mut()
            .find(|(needle, _, remaining)| argv.contains(needle.as_str()) && *remaining != Some(0));
        match failure {
            Some((_, stderr, remaining)) => {
                if let Some(left) = remaining {
                    *left -= 1;
                }
                Err(ProcessError {
                    command: command.to_string(),
                    status: Some(125),
                    stderr_tail: stderr.clone(),
                    not_found: false,
                })
            }
            None => Ok(()),
        }
    }
}

impl Runtime for Recording {
    fn run(&self, command: &PodmanCommand) -> Result<Output, ProcessError> {
        self.record(command)?;
        let stdout = match command.args.first().map(String::as_str) {
            Some("run") => "c0ffee\n".to_string(),
            _ => String::new(),
        };
        Ok(Output {
            stdout,
            stderr: String::new(),
        })
    }

    fn run_lines(
        &self,
        command: &PodmanCommand,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), ProcessError> {
        let lines: &[&str] = match command.args.first().map(String::as_str) {
            Some("build") => &[
                "STEP 1/2: FROM localhost/outrig-base:bookworm",
                "STEP 2/2: RUN make install",
                "installing",
                "COMMIT",
            ],
            Some("pull") => &[
                "Trying to pull image...",
                "Writing manifest to image destination",
            ],
            _ => &[],
        };
        for line in lines {
            on_line(line);
        }
        self.record(command)
    }

    fn start_watch(&self, command: &PodmanCommand) -> Result<Watch, ProcessError> {
        self.record(command)?;
        let io = |e: std::io::Error| ProcessError {
            command: command.to_string(),
            status: None,
            stderr_tail: e.to_string(),
            not_found: false,
        };
        // A watcher that ends when its pipe closes or says `keep`.
        let (input_theirs, input_ours) = std::io::pipe().map_err(io)?;
        let (status_ours, status_theirs) = std::io::pipe().map_err(io)?;
        let input = pipe::Receiver::from_owned_fd(input_theirs.into()).map_err(io)?;
        let mut status = pipe::Sender::from_owned_fd(status_theirs.into()).map_err(io)?;
        tokio::spawn(async move {
            let mut lines = BufReader::new(input).lines();
            let _ = lines.next_line().await;
            let _ = status.write_all(b"0\n").await;
        });
        Ok(Watch::new(
            Box::new(pipe::Sender::from_owned_fd(input_ours.into()).map_err(io)?),
            Exit::Status(pipe::Receiver::from_owned_fd(status_ours.into()).map_err(io)?),
        ))
    }

    fn start_server<'a>(
        &'a self,
        command: &'a PodmanCommand,
        _transport: Transport,
        mut stderr: std::fs::File,
    ) -> Starting<'a> {
        Box::pin(async move {
            self.record(command)?;
            let argv = command.argv().join(" ");
            let behaviour = self
                .servers
                .lock()
                .unwrap()
                .iter()
                .find(|(needle, _)| argv.contains(needle.as_str()))
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| Behaviour::Answer(vec!["echo".into()]));
            let io = |e: std::io::Error| ProcessError {
                command: command.to_string(),
                status: None,
                stderr_tail: e.to_string(),
                not_found: false,
            };
            let (stdin_theirs, stdin_ours) = std::io::pipe().map_err(io)?;
            let (stdout_ours, stdout_theirs) = std::io::pipe().map_err(io)?;
            let (status_ours, status_theirs) = std::io::pipe().map_err(io)?;
            let server = Server {
                stdin: pipe::Sender::from_owned_fd(stdin_ours.into()).map_err(io)?,
                stdout: pipe::Receiver::from_owned_fd(stdout_ours.into()).map_err(io)?,
                exit: Exit::Status(pipe::Receiver::from_owned_fd(status_ours.into()).map_err(io)?),
            };
            let input = pipe::Receiver::from_owned_fd(stdin_theirs.into()).map_err(io)?;
            let output = pipe::Sender::from_owned_fd(stdout_theirs.into()).map_err(io)?;
            let mut status = pipe::Sender::from_owned_fd(status_theirs.into()).map_err(io)?;
            tokio::spawn(async move {
                let code = match behaviour {
                    Behaviour::Exit(text) => {
                        let _ = stderr.write_all(text.as_bytes());
                        drop((input, output));
                        1
                    }
                    Behaviour::Silent => {
                        let mut lines = BufReader::new(input).lines();
                        while let Ok(Some(_)) = lines.next_line().await {}
                        0
                    }
                    Behaviour::Answer(tools) => {
                        serve(input, output, &tools).await;
                        0
                    }
                };
                let _ = status.write_all(format!("{code}\n").as_bytes()).await;
            });
            Ok(server)
        })
    }
}

/// A minimal MCP server: classic `initialize`, `tools/list`, `tools/call` (answers `ok`),
/// `ping`; -32601 for everything else, `server/discover` included.
async fn serve(input: pipe::Receiver, mut output: pipe::Sender, tools: &[String]) {
    let mut lines = BufReader::new(input).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let Some(id) = message.get("id").cloned() else {
            continue;
        };
        let method = message.get("method").and_then(|m| m.as_str()).unwrap_or("");
        let reply = match method {
            "initialize" => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "fake", "version": "1.0"},
            }}),
            "tools/list" => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {
                "tools": tools.iter().map(|name| serde_json::json!({
                    "name": name, "inputSchema": {"type": "object"},
                })).collect::<Vec<_>>(),
            }}),
            "tools/call" => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": "ok"}],
            }}),
            "ping" => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}}),
            _ => serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": format!("method not found: {method}"),
            }}),
        };
        let mut text = reply.to_string();
        text.push('\n');
        if output.write_all(text.as_bytes()).await.is_err() {
            break;
        }
    }
}
