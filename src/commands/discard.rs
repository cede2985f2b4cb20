//! `outrig discard <sid>`: delete a session's record (never a running session's).

use crate::cli::{DiscardArgs, GlobalArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::session;

pub fn run(global: &GlobalArgs, args: &DiscardArgs, env: Environment) -> Result<ExitStatus, Error> {
    let root = super::session_root(global, &args.root, &env);
    let (id, dir) = session::locate(&root, &args.session)?;
    if let Ok(record) = session::read(&dir)
        && record.status == session::Status::Running
        && record.owns_containers()
    {
        return Err(Error::new(format!(
            "session {id} is still running (pid {})",
            record.pid.unwrap_or(0)
        ))
        .hint("stop it first (Ctrl-C in its terminal, or `kill -TERM <pid>`)"));
    }
    session::remove(&root, &id)
        .map_err(|e| Error::new(format!("cannot remove session {id}")).cause(e.to_string()))?;
    crate::output::status!("discarded session {id}");
    Ok(ExitStatus::Success)
}
