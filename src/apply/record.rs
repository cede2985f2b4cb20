//! A plan step's record in the session: begun, ended (done or failed), its podman command
//! run to completion or streamed (builds, pulls), secret values put on its environment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::plan::Action;
use crate::podman::{PodmanCommand, Runtime};
use crate::secret::Redactor;
use crate::session::{Session, StepRecord, StepStatus};

use super::{Context, progress};

/// Run one podman command as a recorded step.
pub(super) async fn step<T>(
    session: &mut Session,
    redactor: &Redactor,
    address: &str,
    action: Action,
    command: Option<&PodmanCommand>,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, Error> {
    let started = Instant::now();
    let index = begin_step(session, address, action, command);
    let result = work.await.map_err(|message| redactor.redact(&message));
    end_step(session, index, started.elapsed(), result.as_ref().err());
    match result {
        Ok(value) => {
            progress(
                address,
                &format!("done in {:.1} s", started.elapsed().as_secs_f64()),
            );
            Ok(value)
        }
        Err(message) => Err(Error::new(format!("`{address}` failed")).cause(message)),
    }
}

/// Run a podman command to completion as a recorded step; its stdout.
pub(super) async fn run_step(
    session: &mut Session,
    context: &Context<'_>,
    address: &str,
    action: Action,
    command: PodmanCommand,
) -> Result<String, Error> {
    let work = run_blocking(&context.runtime, command.clone());
    step(
        session,
        &context.redactor,
        address,
        action,
        Some(&command),
        work,
    )
    .await
}

/// The long podman steps whose output is shown as it arrives.
#[derive(Debug, Clone, Copy)]
pub(super) enum Streamed {
    Build,
    Pull,
}

/// Run a long podman command (a build, a pull) as a recorded step, its output shown as it
/// arrives ([`crate::output::Activity`]) and kept whole in the session's `logs/<log>`, every
/// line with secret values taken out before it is shown or written.
pub(super) async fn run_streamed(
    session: &mut Session,
    context: &Context<'_>,
    address: &str,
    action: Action,
    command: PodmanCommand,
    kind: Streamed,
    image: &str,
) -> Result<(), Error> {
    let (log, doing) = match kind {
        Streamed::Build => (format!("build-{image}.log"), "building"),
        Streamed::Pull => (format!("pull-{image}.log"), "pulling"),
    };
    let path = session.log_path(&log);
    progress(address, &format!("{doing} (log: {})", path.display()));
    let activity = crate::output::Activity::start(address);
    let lines = activity.lines();
    let redactor = context.redactor.clone();
    let runtime = context.runtime.clone();
    let shown = command.clone();
    let work = async move {
        let mut file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create `{}`: {e}", path.display()))?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut attempt = 1;
            loop {
                let mut on_line = |line: &str| {
                    let line = redactor.redact(line);
                    let _ = writeln!(file, "{line}");
                    lines.line(&line);
                };
                match runtime.run_lines(&command, &mut on_line) {
                    Err(error) if attempt < BUILD_ATTEMPTS && lost_to_a_removal(&error) => {
                        attempt += 1;
                        let again = "podman lost a layer to an image removed meanwhile; again";
                        let _ = writeln!(file, "{again}");
                        lines.line(again);
                    }
                    result => return result,
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    };
    step(
        session,
        &context.redactor,
        address,
        action,
        Some(&shown),
        async move {
            let result = work.await;
            // The live line is cleared before the step's outcome is printed.
            drop(activity);
            result
        },
    )
    .await
}

/// How many times a build or pull is tried when podman loses a layer to an image another
/// process removes while it runs.
const BUILD_ATTEMPTS: usize = 3;

/// Whether podman failed because an image or layer it was looking at was removed meanwhile
/// (podman 4's build cache check fails with "layer not known" when another `podman rmi` or
/// `outrig clean --images` runs at the same time): worth trying again, unlike a real failure.
fn lost_to_a_removal(error: &crate::podman::runtime::ProcessError) -> bool {
    error.status == Some(125)
        && ["layer not known", "image not known"]
            .iter()
            .any(|symptom| error.stderr_tail.contains(symptom))
}

/// Record a step as running; its index in the record.
pub(super) fn begin_step(
    session: &mut Session,
    address: &str,
    action: Action,
    command: Option<&PodmanCommand>,
) -> usize {
    session.record.steps.push(StepRecord {
        address: address.to_string(),
        action: action.name().to_string(),
        command: command.map(|c| c.to_string()),
        status: StepStatus::Running,
        started_at: session.now(),
        duration_ms: 0,
        error: None,
    });
    let _ = session.save();
    session.record.steps.len() - 1
}

/// Record how a step ended: done, or failed with `error`.
pub(super) fn end_step(
    session: &mut Session,
    index: usize,
    elapsed: Duration,
    error: Option<&String>,
) {
    let step = &mut session.record.steps[index];
    step.duration_ms = elapsed.as_millis() as u64;
    step.status = match error {
        None => StepStatus::Done,
        Some(_) => StepStatus::Failed,
    };
    step.error = error.cloned();
    let _ = session.save();
}

/// A server's stderr log, relative to the session's `logs/`.
pub(super) fn stderr_log_name(key: &str) -> String {
    format!("{key}.stderr")
}

pub(super) async fn run_blocking(
    runtime: &Arc<dyn Runtime>,
    command: PodmanCommand,
) -> Result<String, String> {
    let runtime = runtime.clone();
    tokio::task::spawn_blocking(move || {
        runtime
            .run(&command)
            .map(|o| o.stdout)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
