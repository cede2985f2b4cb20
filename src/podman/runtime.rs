//! Running podman commands. [`Podman`] is the only code in outrig that starts processes;
//! everything else is handed a [`Runtime`], so that apply, teardown and their failure paths
//! can be tested against a recording fake without podman.

// This is the one place allowed to (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::process::Stdio;

use super::command::PodmanCommand;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Lines of stderr kept in a [`ProcessError`].
const STDERR_TAIL_LINES: usize = 20;

/// How a server's stdin and stdout reach outrig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `podman exec --detach --preserve-fds`: the server reads and writes pipes outrig
    /// passes down, with no process relaying its messages. Local engines only.
    PassedPipes,
    /// `podman exec --interactive`: the podman client relays stdin and stdout over the
    /// engine's API (the one way that crosses a remote connection).
    ExecInteractive,
}

impl Transport {
    /// In words, for the plan.
    pub fn describe(self) -> &'static str {
        match self {
            Transport::PassedPipes => "pipes passed down with `podman exec --preserve-fds`",
            Transport::ExecInteractive => "`podman exec --interactive` over the engine's API",
        }
    }
}

/// A podman command that could not be started or exited unsuccessfully: what ran (secrets
/// masked), how it ended, and the tail of its stderr.
#[derive(Debug)]
pub struct ProcessError {
    pub command: String,
    pub status: Option<i32>,
    pub stderr_tail: String,
    pub not_found: bool,
}

impl std::fmt::Display for ProcessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.not_found {
            return write!(
                f,
                "`{}` could not be started: program not found",
                self.command
            );
        }
        match self.status {
            Some(code) => write!(f, "`{}` exited with status {code}", self.command)?,
            None => write!(f, "`{}` was killed by a signal", self.command)?,
        }
        if !self.stderr_tail.is_empty() {
            write!(f, "\n--- stderr\n{}", self.stderr_tail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ProcessError {}

/// How to get podman, said the same way by every error that finds it missing.
pub const INSTALL_HINT: &str = "install podman (`apt-get install podman`; on macOS and Windows \
     `podman machine init && podman machine start`), or point `OUTRIG_PODMAN` or \
     `[engine] podman` at it";

impl ProcessError {
    /// The error for a podman command that failed while outrig was `doing` something: a
    /// podman that is not installed says so, with [`INSTALL_HINT`].
    pub fn error(self, doing: impl Into<String>) -> crate::error::Error {
        if self.not_found {
            let program = self
                .command
                .split(' ')
                .next()
                .unwrap_or("podman")
                .to_string();
            return crate::error::Error::new(format!("podman (`{program}`) was not found"))
                .cause(self.to_string())
                .hint(INSTALL_HINT);
        }
        crate::error::Error::new(doing).cause(self.to_string())
    }

    /// The command could not be started at all.
    fn not_started(command: &PodmanCommand, error: &std::io::Error) -> ProcessError {
        ProcessError {
            command: command.to_string(),
            status: None,
            stderr_tail: error.to_string(),
            not_found: error.kind() == std::io::ErrorKind::NotFound,
        }
    }
}

/// Captured output of a finished command.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// A future a runtime returns.
pub type Starting<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Server, ProcessError>> + Send + 'a>>;

/// What outrig asks of podman.
pub trait Runtime: Send + Sync {
    /// Run to completion, capturing stdout and stderr; a non-zero exit is an error.
    fn run(&self, command: &PodmanCommand) -> Result<Output, ProcessError>;

    /// Run to completion, handing each line of stdout and stderr (merged, in order) to
    /// `on_line` as it arrives; a non-zero exit is an error carrying the last lines.
    fn run_lines(
        &self,
        command: &PodmanCommand,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), ProcessError>;

    /// Start an MCP server with `command`, its stderr going to `stderr`: a `podman exec
    /// --detach --preserve-fds` of [`SERVER_SHIM`] (resolves once podman started it) or,
    /// over `transport` [`Transport::ExecInteractive`], a `podman exec --interactive` whose
    /// stdio is the server's (resolves once the client runs).
    fn start_server<'a>(
        &'a self,
        command: &'a PodmanCommand,
        transport: Transport,
        stderr: std::fs::File,
    ) -> Starting<'a>;

    /// Start the sandbox's watcher (`podman exec --interactive ... sh -c WATCH`), its stdin
    /// a pipe only outrig holds, in a process group of its own.
    fn start_watch(&self, command: &PodmanCommand) -> Result<Watch, ProcessError>;
}

/// A running watcher: while outrig holds `stdin`, the sandbox lives; closing it (or outrig
/// dying) stops the sandbox, and [`Watch::release`] leaves it running.
pub struct Watch {
    stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
    exit: Exit,
}

impl Watch {
    pub fn new(stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>, exit: Exit) -> Watch {
        Watch {
            stdin: Some(stdin),
            exit,
        }
    }

    /// Stop the sandbox: close the pipe (the watcher then stops the sandbox's first
    /// process).
    pub fn close(&mut self) {
        self.stdin.take();
    }

    /// Wait (at most `limit`) for the watcher to end.
    pub async fn wait(&mut self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.exit.wait()).await;
    }

    /// Keep the sandbox: tell the watcher to end without stopping it.
    pub async fn release(&mut self, limit: std::time::Duration) {
        use tokio::io::AsyncWriteExt;
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"keep\n").await;
            let _ = stdin.flush().await;
            drop(stdin);
        }
        let _ = tokio::time::timeout(limit, self.exit.wait()).await;
    }
}

/// The real runtime: podman's command line.
#[derive(Debug, Clone, Default)]
pub struct Podman;

impl Runtime for Podman {
    fn start_watch(&self, command: &PodmanCommand) -> Result<Watch, ProcessError> {
        let mut podman = tokio::process::Command::new(&command.program);
        podman
            .args(command.argv())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A client's signal to outrig's group must not end the sandbox under it.
            .process_group(0);
        let mut child = podman
            .spawn()
            .map_err(|e| ProcessError::not_started(command, &e))?;
        let stdin = child.stdin.take().expect("piped");
        Ok(Watch::new(Box::new(stdin), Exit::Client(child)))
    }

    fn run(&self, command: &PodmanCommand) -> Result<Output, ProcessError> {
        let mut expression = duct::cmd(&command.program, command.argv())
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        if command.own_process_group {
            expression = expression.before_spawn(|process| {
                use std::os::unix::process::CommandExt;
                process.process_group(0);
                Ok(())
            });
        }
        for (name, value) in &command.process_env {
            expression = expression.env(name, value);
        }
        let output = expression
            .run()
            .map_err(|error| ProcessError::not_started(command, &error))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            Ok(Output { stdout, stderr })
        } else {
            Err(ProcessError {
                command: command.to_string(),
                status: output.status.code(),
                stderr_tail: tail(&stderr, STDERR_TAIL_LINES),
                not_found: false,
            })
        }
    }

    fn run_lines(
        &self,
        command: &PodmanCommand,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), ProcessError> {
        use std::io::BufRead;
        let mut expression = duct::cmd(&command.program, command.argv())
            .stdin_null()
            .stderr_to_stdout()
            .unchecked();
        for (name, value) in &command.process_env {
            expression = expression.env(name, value);
        }
        let reader = expression
            .reader()
            .map_err(|error| ProcessError::not_started(command, &error))?;
        let mut lines = std::io::BufReader::new(&reader);
        let mut last: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match lines.read_until(b'\n', &mut buffer) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => return Err(ProcessError::not_started(command, &error)),
            }
            let text = String::from_utf8_lossy(&buffer);
            // A progress line redrawn with `\r` counts as its last state.
            let line = text.trim_end_matches(['\n', '\r']);
            let line = line.rsplit('\r').next().unwrap_or(line);
            on_line(line);
            if last.len() == STDERR_TAIL_LINES {
                last.pop_front();
            }
            last.push_back(line.to_string());
        }
        let status = reader
            .try_wait()
            .map_err(|error| ProcessError::not_started(command, &error))?
            .map(|output| output.status);
        match status {
            Some(status) if status.success() => Ok(()),
            status => Err(ProcessError {
                command: command.to_string(),
                status: status.and_then(|s| s.code()),
                stderr_tail: Vec::from(last).join("\n"),
                not_found: false,
            }),
        }
    }

    fn start_server<'a>(
        &'a self,
        command: &'a PodmanCommand,
        transport: Transport,
        stderr: std::fs::File,
    ) -> Starting<'a> {
        match transport {
            Transport::PassedPipes => Box::pin(start_server(command, stderr)),
            Transport::ExecInteractive => Box::pin(async move { start_relayed(command, stderr) }),
        }
    }
}

/// The shell that starts an MCP server in its sandbox (`podman exec --detach
/// --preserve-fds=4 ... sh -c SHIM sh COMMAND...`): the server's stdin, stdout and stderr
/// are outrig's own pipes (fds 3, 4 and 5, passed down by podman), and its exit status is
/// written to fd 6 when it ends. Going straight to outrig's pipes, a message costs two
/// copies fewer than through `podman exec --interactive`, which relays stdin and stdout
/// through both the podman client and conmon (and keeps a podman process per server).
pub const SERVER_SHIM: &str =
    r#""$@" <&3 >&4 2>&5 3<&- 4>&- 5>&- 6>&- & exec 3<&- 4>&- 5>&-; wait $!; echo $? >&6"#;

/// What `outrig exec-server` runs: an MCP server in a pod's own container, as `podman
/// exec` would start it in a sandbox.
pub struct ExecServer<'a> {
    /// The working directory.
    pub workdir: &'a std::path::Path,
    /// `NAME=VALUE`, or `NAME` alone for the value of the caller's own variable.
    pub env: &'a [String],
    pub command: &'a [String],
}

/// The variables every server gets from the gateway's environment, besides its own.
const EXEC_SERVER_PASSED: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Start the server `exec` names and return, as `podman exec --detach` does: its
/// environment cleared to the basics ([`EXEC_SERVER_PASSED`]) and the server's own
/// variables, its working directory set, and the descriptors this process inherited (the
/// server's pipes, see [`SERVER_SHIM`]) passed on; its own stdin, stdout and stderr are
/// not, so the caller sees this process end at once.
pub fn exec_server(
    exec: &ExecServer<'_>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), crate::error::Error> {
    let Some((program, args)) = exec.command.split_first() else {
        return Err(
            crate::error::Error::new("`outrig exec-server` was given no command")
                .hint("pass the server's command after `--`"),
        );
    };
    let mut server = std::process::Command::new(program);
    server
        .args(args)
        .env_clear()
        .current_dir(exec.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in EXEC_SERVER_PASSED {
        if let Some(value) = lookup(name) {
            server.env(name, value);
        }
    }
    for variable in exec.env {
        match variable.split_once('=') {
            Some((name, value)) => {
                server.env(name, value);
            }
            None => match lookup(variable) {
                Some(value) => {
                    server.env(variable, value);
                }
                None => {
                    return Err(crate::error::Error::new(format!(
                        "`{variable}` is not set in the gateway's environment"
                    ))
                    .hint("the exported pod takes it from its Secret: create the Secret the export lists"));
                }
            },
        }
    }
    server.spawn().map(|_| ()).map_err(|error| {
        crate::error::Error::new(format!(
            "cannot start `{program}` in `{}`",
            exec.workdir.display()
        ))
        .cause(error.to_string())
    })
}

/// How many descriptors [`SERVER_SHIM`] is passed (fds 3 to 6).
pub const SERVER_FDS: usize = 4;

/// A server process started by [`Runtime::start_server`]: its stdio and its end.
pub struct Server {
    /// The server's stdin.
    pub stdin: tokio::net::unix::pipe::Sender,
    /// The server's stdout.
    pub stdout: tokio::net::unix::pipe::Receiver,
    /// Its end.
    pub exit: Exit,
}

/// How a server started by [`Runtime::start_server`] (or a watcher) ends.
pub enum Exit {
    /// A pipe on which [`SERVER_SHIM`] writes the server's exit status.
    Status(tokio::net::unix::pipe::Receiver),
    /// The podman client relaying it, whose exit status is the process's.
    Client(tokio::process::Child),
}

impl Exit {
    /// Wait for the server to end: its exit status, or `None` when it ended without one
    /// (it was killed along with its shell, or the container went away).
    pub async fn wait(&mut self) -> Option<i32> {
        match self {
            Exit::Status(pipe) => {
                use tokio::io::AsyncReadExt;
                let mut text = String::new();
                pipe.read_to_string(&mut text).await.ok()?;
                text.trim().parse().ok()
            }
            Exit::Client(child) => child.wait().await.ok()?.code(),
        }
    }
}

/// Start a server over `podman exec --interactive`: its stdin and stdout are the podman
/// client's, which relays them over the engine's API; the client runs in a process group
/// of its own, so a client's group signal does not cut the relay during teardown.
fn start_relayed(command: &PodmanCommand, stderr: std::fs::File) -> Result<Server, ProcessError> {
    let io = |error: std::io::Error| ProcessError::not_started(command, &error);
    let mut podman = tokio::process::Command::new(&command.program);
    podman
        .args(command.argv())
        .envs(command.process_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = podman.spawn().map_err(io)?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    use std::os::fd::{AsFd, OwnedFd};
    let owned = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned();
    let stdin_fd: OwnedFd = owned(stdin.as_fd()).map_err(io)?;
    let stdout_fd: OwnedFd = owned(stdout.as_fd()).map_err(io)?;
    drop((stdin, stdout));
    Ok(Server {
        stdin: tokio::net::unix::pipe::Sender::from_owned_fd(stdin_fd).map_err(io)?,
        stdout: tokio::net::unix::pipe::Receiver::from_owned_fd(stdout_fd).map_err(io)?,
        exit: Exit::Client(child),
    })
}

async fn start_server(
    command: &PodmanCommand,
    stderr: std::fs::File,
) -> Result<Server, ProcessError> {
    use command_fds::{CommandFdExt, FdMapping};
    use tokio::net::unix::pipe;
    let io = |error: std::io::Error| ProcessError::not_started(command, &error);
    let (stdin_theirs, stdin_ours) = std::io::pipe().map_err(io)?;
    let (stdout_ours, stdout_theirs) = std::io::pipe().map_err(io)?;
    let (status_ours, status_theirs) = std::io::pipe().map_err(io)?;
    let theirs: [std::os::fd::OwnedFd; SERVER_FDS] = [
        stdin_theirs.into(),
        stdout_theirs.into(),
        stderr.into(),
        status_theirs.into(),
    ];
    let output = {
        // The command owns the server's ends and closes them when dropped, so that
        // outrig sees end-of-file when the server exits.
        let mut podman = tokio::process::Command::new(&command.program);
        podman
            .args(command.argv())
            .envs(command.process_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mappings = theirs
            .into_iter()
            .zip(3..)
            .map(|(parent_fd, child_fd)| FdMapping {
                parent_fd,
                child_fd,
            })
            .collect();
        podman
            .fd_mappings(mappings)
            .map_err(|e| io(std::io::Error::other(e)))?;
        podman.output().await.map_err(io)?
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ProcessError {
            command: command.to_string(),
            status: output.status.code(),
            stderr_tail: tail(&stderr, STDERR_TAIL_LINES),
            not_found: false,
        });
    }
    Ok(Server {
        stdin: pipe::Sender::from_owned_fd(stdin_ours.into()).map_err(io)?,
        stdout: pipe::Receiver::from_owned_fd(stdout_ours.into()).map_err(io)?,
        exit: Exit::Status(pipe::Receiver::from_owned_fd(status_ours.into()).map_err(io)?),
    })
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
