//! Running podman commands. The only module in outrig that starts processes.

// This is the one place allowed to (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::process::Stdio;

use super::command::PodmanCommand;

/// Lines of stderr kept in a [`ProcessError`].
const STDERR_TAIL_LINES: usize = 20;

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

impl ProcessError {
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

/// Runs podman commands.
#[derive(Debug, Clone, Default)]
pub struct Runtime;

impl Runtime {
    /// Run to completion, capturing stdout and stderr; a non-zero exit is an error.
    pub fn run(&self, command: &PodmanCommand) -> Result<Output, ProcessError> {
        let mut expression = duct::cmd(&command.program, command.argv())
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked();
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

    /// Run to completion with stdout and stderr appended to `log`; a non-zero exit is an
    /// error carrying the log's tail.
    pub fn run_logged(
        &self,
        command: &PodmanCommand,
        log: &std::path::Path,
    ) -> Result<(), ProcessError> {
        let mut expression = duct::cmd(&command.program, command.argv())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_path(log)
            .unchecked();
        for (name, value) in &command.process_env {
            expression = expression.env(name, value);
        }
        let output = expression
            .run()
            .map_err(|error| ProcessError::not_started(command, &error))?;
        if output.status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        Err(ProcessError {
            command: command.to_string(),
            status: output.status.code(),
            stderr_tail: tail(&text, STDERR_TAIL_LINES),
            not_found: false,
        })
    }
}

impl Runtime {
    /// Start a long-running command (`podman exec --interactive ...`) for async use, with
    /// piped stdin and stdout; stderr goes to `stderr` (a log file, or null). The child is
    /// killed if its handle is dropped.
    pub fn spawn_stdio(
        &self,
        command: &PodmanCommand,
        stderr: Stdio,
    ) -> Result<tokio::process::Child, ProcessError> {
        tokio::process::Command::new(&command.program)
            .args(command.argv())
            .envs(command.process_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| ProcessError::not_started(command, &error))
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
