//! `TestContext`: a temporary project and a way to run the `outrig` binary in it with a
//! cleared environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestContext {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Everything the user saw.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl TestContext {
    pub fn new() -> Self {
        TestContext {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    /// The variables every command of this context gets.
    pub fn vars(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Write a file relative to the project, creating directories.
    pub fn write(&self, relative: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Run `outrig ARGS` in the project directory.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.path(), args)
    }

    /// Run `outrig ARGS` in the project directory; killed (and the test failed) if it has
    /// not ended by `deadline`. For commands that print little: output is read at the end.
    pub fn run_with_deadline(&self, args: &[&str], deadline: std::time::Duration) -> Run {
        let mut child = outrig_command(self.path(), &self.env)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("outrig runs");
        let started = std::time::Instant::now();
        while child.try_wait().expect("outrig is waited for").is_none() {
            if started.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`outrig {}` did not end within {deadline:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Run::from(child.wait_with_output().expect("outrig's output"))
    }

    /// Run `outrig ARGS` in `dir`.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        let output = outrig_command(dir, &self.env)
            .args(args)
            .output()
            .expect("outrig runs");
        Run::from(output)
    }
}

/// `outrig` with a cleared environment (PATH kept so podman can be found).
pub fn outrig_command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outrig"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    // Rootless podman finds its storage and runtime directory through these.
    for name in ["HOME", "XDG_RUNTIME_DIR"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Run `outrig ARGS` in the repository root (for the committed examples).
pub fn run_in_repo(args: &[&str]) -> Run {
    Run::from(
        outrig_command(&repo_root(), &[])
            .args(args)
            .output()
            .expect("outrig runs"),
    )
}

/// The command a plan step's operation runs, as argv (program first), from the plan's JSON
/// (`<session>` filled in with `session`).
pub fn planned_argv(step: &serde_json::Value, session: &str) -> Vec<String> {
    let command = &step["operation"]["command"];
    let mut argv = vec![command["program"].as_str().unwrap().to_string()];
    for arg in command["global_args"].as_array().unwrap() {
        argv.push(arg.as_str().unwrap().to_string());
    }
    for arg in command["args"].as_array().unwrap() {
        argv.push(match arg {
            serde_json::Value::String(text) => text.clone(),
            other => other["session"]
                .as_str()
                .unwrap()
                .replace("{session_dir}", "/tmp")
                .replace("{session}", session),
        });
    }
    argv
}
