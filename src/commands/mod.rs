//! One file per subcommand: load what it needs, call the core, print the view.

pub mod apply;
pub mod clean;
pub mod destroy;
pub mod discard;
pub mod init;
pub mod logs;
pub mod ls;
pub mod mcp;
pub mod plan;
pub mod schema;
pub mod validate;

use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, SessionRootArgs};

/// The session root for commands that read sessions: the flag, else the config's
/// `session-root` when a config is found (an invalid or missing one is not an error here),
/// else the default.
pub fn session_root(global: &GlobalArgs, args: &SessionRootArgs, cwd: &Path) -> PathBuf {
    if let Some(root) = &args.session_root {
        return cwd.join(root);
    }
    let configured = crate::config::load(global.config.as_deref(), cwd)
        .ok()
        .and_then(|loaded| loaded.config.session_root);
    crate::session::root(None, configured.as_deref())
}

/// Start the session that carries out `plan`: its directory and first record.
pub fn begin_session(
    computed: &plan::Computed,
    plan: &crate::plan::Plan,
    session_dir: Option<&Path>,
    command: &str,
) -> Result<crate::session::Session, crate::error::Error> {
    let mut session = crate::session::Session::create(
        &computed.session_root,
        session_dir,
        &plan.desired.project,
        &plan.desired.project_id,
    )
    .map_err(|e| {
        crate::error::Error::new("cannot create the session record").cause(e.to_string())
    })?;
    session.record.command = command.to_string();
    session.record.desired = Some(plan.desired.clone());
    session.record.agent = plan.agent.clone();
    session.record.config_digest = plan.config_digest.clone();
    session.record.config_path = computed.config_path.display().to_string();
    let _ = session.save();
    Ok(session)
}

/// Finalize a session's record from how its apply ended; returns the exit status.
pub fn finish_session(
    session: &mut crate::session::Session,
    result: &Result<(), crate::apply::Stop>,
    status_on_success: crate::session::Status,
) -> Result<crate::error::ExitStatus, crate::error::Error> {
    use crate::apply::Stop;
    use crate::error::ExitStatus;
    use crate::session::Status;
    let (status, exit) = match result {
        Ok(()) => (status_on_success, ExitStatus::Success),
        Err(Stop::Failed(_)) => (Status::Failed, ExitStatus::Failure),
        Err(Stop::Interrupted(signal)) => (Status::Interrupted, signal.exit_status()),
    };
    session.record.ended_at = Some(crate::session::now());
    session.record.pid = None;
    session.record.status = status;
    session.record.exit_code = Some(exit as i32);
    session.save().map_err(|e| {
        crate::error::Error::new("cannot write the session record").cause(e.to_string())
    })?;
    Ok(exit)
}

/// A tokio runtime for one command (two workers: the machines are small).
pub fn runtime() -> Result<tokio::runtime::Runtime, crate::error::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            crate::error::Error::new("cannot start the async runtime").cause(e.to_string())
        })
}
