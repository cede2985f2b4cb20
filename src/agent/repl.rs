//! How a user talks to the agent: one-shot (`--prompt`, or a prompt piped on stdin: the
//! answer alone on stdout) or, on a terminal, a REPL with line editing, `/tools`,
//! `/reset`, `/quit`, Ctrl-C cancelling the current turn and Ctrl-D ending the session.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Agent, TurnError};
use crate::error::Error;

/// One turn; the answer alone on stdout.
pub async fn one_shot(agent: &mut Agent, prompt: &str) -> Result<(), Error> {
    match agent.turn(prompt).await {
        Ok(answer) => {
            let mut stdout = crate::output::stdout_stream().lock();
            let _ = writeln!(stdout, "{}", answer.trim_end());
            let _ = stdout.flush();
            Ok(())
        }
        Err(error) => Err(Error::new(error.to_string())
            .hint("the session's logs/transcript.jsonl has the whole turn")),
    }
}

const HELP: &str = "/tools lists the tools, /reset forgets the conversation, /quit (or Ctrl-D) ends the session; Ctrl-C cancels a turn";

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
    loop {
        let mut ed = editor.take().expect("the editor is back after each line");
        let (ed, line) = tokio::task::spawn_blocking(move || {
            let line = ed.readline("> ");
            (ed, line)
        })
        .await
        .map_err(|e| Error::new("the line editor failed").cause(e.to_string()))?;
        editor = Some(ed);
        let line = match line {
            Ok(line) => line,
            // Ctrl-C at the prompt clears the line, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::new("cannot read the prompt").cause(e.to_string())),
        };
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
        let outcome = tokio::select! {
            result = agent.turn(line) => Some(result),
            _ = interrupt.recv() => None,
        };
        match outcome {
            Some(Ok(answer)) => {
                let mut out = crate::output::stdout_stream().lock();
                let _ = writeln!(out, "{}", answer.trim_end());
                let _ = out.flush();
            }
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
    Ok(())
}
