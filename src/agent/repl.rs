//! How a user talks to the agent: one-shot (`--prompt`, or a prompt piped on stdin: the
//! answer alone on stdout) or, on a terminal, a REPL with line editing, `/tools`,
//! `/reset`, `/quit`, Ctrl-C cancelling the current turn and Ctrl-D ending the session.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Agent, TurnError};
use crate::error::Error;

/// What the model writes, on stdout as it arrives; remembers whether the last thing
/// written ended a line.
#[derive(Default)]
struct Printer {
    wrote: bool,
    at_line_start: bool,
}

impl Printer {
    fn text(&mut self, text: &str) {
        let mut stdout = crate::output::stdout_stream().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        self.wrote = true;
        self.at_line_start = text.ends_with('\n');
    }

    /// End the answer with a newline.
    fn end(&mut self) {
        if self.wrote && !self.at_line_start {
            self.text("\n");
        }
        *self = Printer::default();
    }
}

/// One turn; the answer alone on stdout, written as it arrives, then the tokens it cost on
/// stderr.
pub async fn one_shot(agent: &mut Agent, prompt: &str) -> Result<(), Error> {
    let mut printer = Printer::default();
    let result = agent.turn(prompt, &mut |text| printer.text(text)).await;
    printer.end();
    crate::output::status!("{}", usage_line(&agent.spent()));
    match result {
        Ok(_) => Ok(()),
        Err(error) => Err(Error::new(error.to_string())
            .hint("the session's logs/transcript.jsonl has the whole turn")),
    }
}

/// `usage: 3 requests, 1520 input + 210 output tokens`.
pub fn usage_line(spent: &super::Spent) -> String {
    let requests = format!(
        "{} request{}",
        spent.requests,
        if spent.requests == 1 { "" } else { "s" }
    );
    if spent.reported == 0 {
        return format!("usage: {requests} (the provider reported no token usage)");
    }
    let partial = if spent.reported < spent.requests {
        format!(" ({} of them reported usage)", spent.reported)
    } else {
        String::new()
    };
    format!(
        "usage: {requests}, {} input + {} output tokens{partial}",
        spent.usage.input_tokens, spent.usage.output_tokens
    )
}

const HELP: &str = "/tools lists the tools, /reset forgets the conversation, /quit (or Ctrl-D, or Ctrl-C twice) ends the session; Ctrl-C cancels a turn";

/// The REPL. `interrupts_handled` tells apply's signal handling to leave SIGINT to us.
pub async fn repl(agent: &mut Agent, interrupts_handled: Arc<AtomicBool>) -> Result<(), Error> {
    use rustyline::error::ReadlineError;
    let editor = rustyline::DefaultEditor::new()
        .map_err(|e| Error::new("cannot start the line editor").cause(e.to_string()))?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::new("cannot listen for Ctrl-C").cause(e.to_string()))?;
    interrupts_handled.store(true, Ordering::SeqCst);
    crate::output::status!(
        "agent ready with {} tools. {HELP}",
        agent.toolbox().tools().len()
    );
    let mut editor = Some(editor);
    let mut interrupted_at: Option<std::time::Instant> = None;
    // The line being read, in a blocking thread; it stays pending across a Ctrl-C that
    // arrives as a signal (terminals the editor does not put in raw mode).
    let mut reading: Option<tokio::task::JoinHandle<_>> = None;
    loop {
        let task = match reading.take() {
            Some(task) => task,
            None => {
                let mut ed = editor.take().expect("the editor is back after each line");
                tokio::task::spawn_blocking(move || {
                    let line = ed.readline("> ");
                    (ed, line)
                })
            }
        };
        let mut task = task;
        let joined = tokio::select! {
            joined = &mut task => joined,
            _ = interrupt.recv() => {
                if interrupted_at.is_some_and(|at| at.elapsed() < Duration::from_secs(3)) {
                    crate::output::status!("\n(Ctrl-C twice: ending the session)");
                    break;
                }
                interrupted_at = Some(std::time::Instant::now());
                crate::output::status!("\n(Ctrl-C again to end the session, or Ctrl-D)");
                reading = Some(task);
                continue;
            }
        };
        let (ed, line) =
            joined.map_err(|e| Error::new("the line editor failed").cause(e.to_string()))?;
        editor = Some(ed);
        let line = match line {
            Ok(line) => line,
            // Ctrl-C at the prompt clears the line, as in a shell; twice in a row ends the
            // session.
            Err(ReadlineError::Interrupted) => {
                if interrupted_at.is_some_and(|at| at.elapsed() < Duration::from_secs(3)) {
                    crate::output::status!("(Ctrl-C twice: ending the session)");
                    break;
                }
                interrupted_at = Some(std::time::Instant::now());
                crate::output::status!("(Ctrl-C again to end the session, or Ctrl-D)");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::new("cannot read the prompt").cause(e.to_string())),
        };
        interrupted_at = None;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(ed) = editor.as_mut() {
            let _ = ed.add_history_entry(line);
        }
        match line {
            "/quit" | "/exit" => break,
            "/reset" => {
                agent.reset();
                crate::output::status!("(conversation forgotten)");
                continue;
            }
            "/tools" => {
                let mut out = crate::output::stdout_stream().lock();
                for tool in agent.toolbox().tools() {
                    let description = tool.description.as_deref().unwrap_or_default();
                    let first = description.lines().next().unwrap_or_default();
                    let _ = writeln!(out, "{:<40} {first}", tool.name);
                }
                continue;
            }
            "/help" => {
                crate::output::status!("{HELP}");
                continue;
            }
            other if other.starts_with('/') => {
                crate::output::status!("unknown command `{other}`. {HELP}");
                continue;
            }
            _ => {}
        }
        // A Ctrl-C that arrived after the last turn ended must not cancel this one.
        while tokio::time::timeout(Duration::ZERO, interrupt.recv())
            .await
            .is_ok()
        {}
        let mark = agent.mark();
        let mut printer = Printer::default();
        let mut sink = |text: &str| printer.text(text);
        let outcome = tokio::select! {
            result = agent.turn(line, &mut sink) => Some(result),
            _ = interrupt.recv() => None,
        };
        printer.end();
        match outcome {
            Some(Ok(_)) => {}
            // Every requested call has a result: the history stays as it is.
            Some(Err(error @ TurnError::ToolCallLimit(_))) => {
                crate::output::status!("turn ended: {error}");
            }
            Some(Err(error)) => {
                agent.rollback(mark, &error.to_string());
                crate::output::status!(
                    "turn failed: {error}\n(the turn was dropped; the session goes on)"
                );
            }
            None => {
                agent.rollback(mark, "cancelled with Ctrl-C");
                crate::output::status!("\n(turn cancelled)");
            }
        }
    }
    interrupts_handled.store(false, Ordering::SeqCst);
    crate::output::status!("{}", usage_line(&agent.spent()));
    Ok(())
}
