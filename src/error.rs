//! The error users see: what failed, why (`Caused by:` lines), and what to do (`hint:`).
//! Every command returns this; `main` renders it and exits with [`ExitStatus::Failure`].

use std::fmt::Write as _;

/// Exit statuses, the same for every command (see `doc/exit-codes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked (for `validate`: the config is valid).
    Success = 0,
    /// Anything went wrong: invalid config, bad flags, podman failed.
    Failure = 1,
    /// `plan --detailed-exitcode` only: the plan has changes.
    ChangesPending = 2,
    /// Stopped by SIGHUP (128 + 1).
    HungUp = 129,
    /// Stopped by SIGINT, Ctrl-C (128 + 2).
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15).
    Terminated = 143,
}

/// An error with causes and a hint, in the style of uv and cargo.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    /// Rendered blocks shown before the error line (an invalid config's diagnostics).
    pub details: Vec<String>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            details: Vec::new(),
        }
    }

    pub fn cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Show `detail` (already rendered) before the error line.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }

    /// The text printed to stderr (styled; `anstream` strips styles where colour is off).
    pub fn render(&self) -> String {
        let red = anstyle::AnsiColor::Red.on_default().bold();
        let cyan = anstyle::AnsiColor::Cyan.on_default().bold();
        let mut out = String::new();
        for detail in &self.details {
            let _ = writeln!(out, "{detail}");
        }
        let _ = writeln!(out, "{red}error{red:#}: {}", self.message);
        for cause in &self.causes {
            for (index, line) in cause.lines().enumerate() {
                if index == 0 {
                    let _ = writeln!(out, "  Caused by: {line}");
                } else {
                    let _ = writeln!(out, "             {line}");
                }
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{cyan}hint{cyan:#}: {hint}");
        }
        out
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
