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

/// A long podman step (a build, a pull) shown while it runs. On a terminal: one live line
/// with a spinner, the step's address, the elapsed time and the build's current
/// `STEP n/m: ...` (or its latest line), cleared when the step ends. Elsewhere (a pipe, a
/// CI log): every line as it arrives, prefixed with the address.
pub struct Activity {
    lines: ActivityLines,
}

/// Where an [`Activity`]'s lines go; cloned into the thread that reads them.
#[derive(Clone)]
pub struct ActivityLines {
    label: String,
    live: Option<indicatif::ProgressBar>,
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Activity {
    /// Start showing the step at `label` (`image.tools`).
    pub fn start(label: &str) -> Activity {
        use std::io::IsTerminal;
        let live = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "  {spinner} {prefix} {elapsed:>4}  {wide_msg}",
                )
                .expect("the template is valid"),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Activity {
            lines: ActivityLines {
                label: label.to_string(),
                live,
                ended: Default::default(),
            },
        }
    }

    /// The sink for the step's output lines.
    pub fn lines(&self) -> ActivityLines {
        self.lines.clone()
    }
}

impl Drop for Activity {
    /// The step is over (finished, failed, or abandoned on a signal): later lines are no
    /// longer shown, and the live line is cleared.
    fn drop(&mut self) {
        self.lines
            .ended
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(bar) = &self.lines.live {
            bar.finish_and_clear();
        }
    }
}

impl ActivityLines {
    /// One line of the step's output (secrets already taken out).
    pub fn line(&self, line: &str) {
        if self.ended.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        match &self.live {
            Some(bar) => {
                // The build's own step headline stays until the next one; a pull has none,
                // so its latest line shows.
                let headline = line.starts_with("STEP ");
                if headline || !bar.message().starts_with("STEP ") {
                    bar.set_message(line.to_string());
                }
            }
            None => stderr_line(&plain_line(&self.label, line)),
        }
    }
}

/// An output line of the step at `label` as it is shown without a terminal.
pub fn plain_line(label: &str, line: &str) -> String {
    format!("  {label} | {line}")
}
