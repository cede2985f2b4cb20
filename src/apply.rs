//! Carrying out a plan: the operations its steps carry, in order — build and pull images,
//! remove orphans, start the sandbox, start every MCP server in it and prove it answers —
//! recording everything in the session, then tearing down (unless kept). It decides by
//! matching on each step's [`Operation`], never by reading words or argument positions, and
//! runs podman only through the [`Runtime`] it is handed.

use std::sync::Arc;

use crate::config::resolve::Engine;
use crate::error::{Error, ExitStatus};
use crate::mcp::Backend;
use crate::plan::Plan;
use crate::podman::runtime::Watch;
use crate::podman::{PodmanCommand, Runtime};
use crate::secret::{FingerprintKey, Redactor};
use crate::session::{EndReason, Session, Status};

use servers::{RunningServer, backends};
use signals::Signals;
pub use signals::{Signal, SignalSource};
use steps::run_steps;
use teardown::teardown;

/// What apply needs besides the plan.
pub struct Context<'a> {
    /// What runs podman.
    pub runtime: Arc<dyn Runtime>,
    /// The engine teardown talks to (the plan's commands carry their own).
    pub engine: &'a Engine,
    /// Host variables, for the secrets handed to podman.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The key the plan's secret fingerprints were made with.
    pub key: &'a FingerprintKey,
    /// Keeps secret values out of every error and record.
    pub redactor: Redactor,
    /// Leave the sandbox running after the servers were proven.
    pub keep: bool,
    /// While set, SIGINT is left to the work (the agent's REPL cancels a turn with it).
    pub interrupts_handled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Where stopping signals come from.
    pub signals: SignalSource,
    /// Where what the servers send towards their client goes (the gateway's clients).
    pub hub: Arc<crate::mcp::relay::Hub>,
    /// Cancelled when the gateway's client closed its session: the apply stops there,
    /// even before its work starts.
    pub client_gone: Option<tokio_util::sync::CancellationToken>,
    /// Why the session ended when its work returns: the agent's job was done, or (for a
    /// gateway) the client closed the session.
    pub done: EndReason,
}

impl Context<'_> {
    /// The engine's podman, for the commands apply runs itself (not a plan step's).
    fn podman(&self) -> PodmanCommand {
        PodmanCommand::new(self.engine.podman.clone(), &self.engine.global_args)
    }
}

/// Why an apply stopped before finishing.
#[derive(Debug)]
pub enum Stop {
    Failed(Error),
    Interrupted(Signal),
    /// The gateway's client closed its session before the gateway was ready.
    ClientLeft,
}

/// How a session ended, as recorded.
pub struct Ending {
    pub status: Status,
    pub reason: EndReason,
    pub exit: ExitStatus,
}

/// How an apply that ended with `result` is recorded; `keep`: the sandbox stays after
/// success; `done`: why a session whose work returned ended.
pub fn ending(result: &Result<(), Stop>, keep: bool, done: EndReason) -> Ending {
    let (status, reason, exit) = match result {
        Ok(()) if keep => (Status::Kept, done, ExitStatus::Success),
        Ok(()) => (Status::Finished, done, ExitStatus::Success),
        Err(Stop::ClientLeft) => (
            Status::Finished,
            EndReason::ClientClosed,
            ExitStatus::Success,
        ),
        Err(Stop::Failed(_)) => (Status::Failed, EndReason::Failed, ExitStatus::Failure),
        Err(Stop::Interrupted(signal)) => (
            Status::Interrupted,
            signal.end_reason(),
            signal.exit_status(),
        ),
    };
    Ending {
        status,
        reason,
        exit,
    }
}

/// Apply `plan` in `session`, then hand the servers that answered to `work` (which returns
/// when the session's job is done). Whatever happens — success, a failed step, SIGINT,
/// SIGTERM or SIGHUP, the gateway's client leaving — the end is recorded at once, then
/// what was started is torn down (unless kept after success) and the teardown recorded,
/// before returning. A second SIGINT during teardown exits at once; SIGTERM and SIGHUP do
/// not.
pub async fn apply<W>(
    plan: &Plan,
    session: &mut Session,
    context: &Context<'_>,
    work: W,
) -> Result<(), Stop>
where
    W: AsyncFnOnce(&mut Session, Vec<Backend>) -> Result<(), Error>,
{
    let mut signals = Signals::new(&context.signals)
        .map_err(|e| Stop::Failed(Error::new("cannot listen for signals").cause(e.to_string())))?;
    signals.pass_interrupt = context.interrupts_handled.clone();
    let mut servers: Vec<RunningServer> = Vec::new();
    let mut watches: Vec<Watch> = Vec::new();
    let client_gone = async {
        match &context.client_gone {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        // A signal that arrives with the work's end (a client's EOF) still counts.
        biased;
        signal = signals.next() => Err(Stop::Interrupted(signal)),
        // The work ends with the client's session when it is serving it (and records what
        // it saw); before that, the client leaving stops the apply.
        result = async {
            run_steps(plan, session, context, &mut servers, &mut watches).await?;
            let backends = backends(plan, session, &servers);
            work(session, backends).await
        } => result.map_err(|error| Stop::Failed(redacted(error, &context.redactor))),
        () = client_gone => Err(Stop::ClientLeft),
    };
    if let Err(Stop::Interrupted(signal)) = &result {
        crate::output::status!(
            "\n{}: stopping the servers and removing the sandbox (Ctrl-C again exits at once)",
            signal.name()
        );
        tokio::spawn(async move {
            let mut said = false;
            loop {
                let again = signals.next().await;
                // Only a person presses Ctrl-C twice. SIGTERM and SIGHUP come again from
                // supervisors and from clients that signal their whole process group on
                // shutdown; the teardown is short, so it goes on (SIGKILL still stops it).
                if again == Signal::Interrupt {
                    crate::output::status!("SIGINT: exiting without finishing the teardown");
                    std::process::exit(again.exit_status() as i32);
                }
                if !said {
                    crate::output::status!("{}: the teardown goes on", again.name());
                    said = true;
                }
            }
        });
    }
    let keep = context.keep && result.is_ok();
    // The end goes on disk before the teardown: a client's SIGKILL may follow its signal
    // (or its EOF) within milliseconds.
    let ending = ending(&result, keep, context.done);
    if let Err(error) = session.record_end(ending.status, ending.reason, ending.exit as i32) {
        crate::output::status!(
            "warning: cannot write the session record `{}`: {error}",
            session.dir.join(crate::session::RECORD_FILE).display()
        );
    }
    let left = teardown(plan, session, context, &mut servers, &mut watches, keep).await;
    let names = left.iter().map(|(name, _)| name.clone()).collect();
    if let Err(error) = session.record_teardown(names) {
        crate::output::status!(
            "warning: cannot write the session record `{}`: {error}",
            session.dir.join(crate::session::RECORD_FILE).display()
        );
    }
    if left.is_empty() {
        return result;
    }
    let mut error = Error::new(format!(
        "the teardown left {} container(s) or network(s) behind",
        left.len()
    ));
    for (name, why) in &left {
        error = error.cause(format!("`{name}`: {why}"));
    }
    let (networks, containers): (Vec<&str>, Vec<&str>) = left
        .iter()
        .map(|(n, _)| n.as_str())
        .partition(|n| session.record.egress.values().any(|e| e.network == *n));
    let mut how = Vec::new();
    if !containers.is_empty() {
        how.push(format!("`podman rm --force {}`", containers.join(" ")));
    }
    if !networks.is_empty() {
        how.push(format!(
            "`podman network rm --force {}`",
            networks.join(" ")
        ));
    }
    let error = redacted(
        error.hint(format!(
            "remove {} with {} (or `outrig clean`)",
            if left.len() == 1 { "it" } else { "them" },
            how.join(" and ")
        )),
        &context.redactor,
    );
    match result {
        // A signal's exit status stands; the leftovers are said on stderr.
        Err(Stop::Interrupted(signal)) => {
            crate::output::stderr(&error.render());
            Err(Stop::Interrupted(signal))
        }
        _ => Err(Stop::Failed(error)),
    }
}

fn progress(address: &str, message: &str) {
    crate::output::status!("  {address}: {message}");
}

/// An error with every secret value taken out.
fn redacted(error: Error, redactor: &Redactor) -> Error {
    Error {
        message: redactor.redact(&error.message),
        causes: error.causes.iter().map(|c| redactor.redact(c)).collect(),
        hint: error.hint.as_deref().map(|h| redactor.redact(h)),
        details: error.details.iter().map(|d| redactor.redact(d)).collect(),
    }
}

mod egress;
pub mod pin;
mod record;
pub mod removal;
mod servers;
mod signals;
mod steps;
mod teardown;

#[cfg(test)]
mod tests;
