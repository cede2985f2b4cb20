//! Where outrig's words go: data (plans, schemas, the agent's answer) on stdout, progress
//! and diagnostics on stderr, colour only where `anstream` allows it (a terminal, no
//! `NO_COLOR`). The only module that prints (enforced by `clippy.toml`); everything else
//! calls [`status!`], [`stdout`] and friends.

// This is the one place allowed to (see clippy.toml).
#![allow(clippy::disallowed_macros, clippy::disallowed_methods)]

use std::io::Write;

/// A line of progress or explanation on stderr: `status!("removed {n} containers")`.
macro_rules! status {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(&format!($($arg)*))
    };
}
pub(crate) use status;

/// A line on stderr (styles stripped where colour is off).
pub fn stderr_line(text: &str) {
    anstream::eprintln!("{text}");
}

/// Text on stderr, as is (styles stripped where colour is off).
pub fn stderr(text: &str) {
    anstream::eprint!("{text}");
    let _ = std::io::stderr().flush();
}

/// A rendered diagnostic on stderr.
pub fn diagnostic(text: &str) {
    anstream::eprintln!("{text}");
}

/// Data on stdout, unstyled bytes as given. A closed pipe (`outrig schema | head`) is not
/// an error worth reporting.
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Styled text on stdout (a plan's human view).
pub fn stdout_styled(text: &str) {
    anstream::print!("{text}");
    let _ = std::io::stdout().flush();
}

/// stdout itself, for what streams: the MCP protocol of `outrig mcp`, the agent's answer,
/// `outrig logs -f`.
pub fn stdout_stream() -> std::io::Stdout {
    std::io::stdout()
}

/// stdin itself, for the agent's prompt and the confirmation.
pub fn stdin_stream() -> std::io::Stdin {
    std::io::stdin()
}
