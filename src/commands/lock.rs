//! `outrig lock`: pin what runs. Plans every image that has servers (no agent), builds or
//! pulls what is not current, starts the sandboxes and servers, writes every image's id and
//! every tool's whole definition to `outrig.lock`, and tears down.

use crate::apply::{Stop, pin::LockMode};
use crate::cli::{GlobalArgs, LockCommandArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::plan::desired::Target;
use crate::plan::render;
use crate::project::Project;
use crate::project::runner::SessionOptions;
use crate::session::Session;

pub fn run(
    global: &GlobalArgs,
    args: &LockCommandArgs,
    env: Environment,
) -> Result<ExitStatus, Error> {
    let project = Project::load(global.config.as_deref(), env, args.session_root.as_deref())?;
    let mut plan = project.plan(Target::Every, None)?;
    // Nothing but what pinning needs: images, orphans stay for `apply` to remove.
    plan.steps
        .retain(|s| !matches!(s.address, crate::plan::Address::Container(_)));
    if plan.desired.servers.is_empty() {
        return Err(
            Error::new("no image has MCP servers: there is nothing to pin")
                .hint("add servers under `[images.<name>.mcp.<server>]`"),
        );
    }
    crate::output::status!("{}", render::summary_line(&plan));
    let lock_path = project.lock_path();
    let mut session = project.begin_session(&plan, None, "lock")?;
    crate::output::status!(
        "outrig lock: session {} ({})",
        session.record.id,
        session.dir.display()
    );
    let runtime = super::runtime()?;
    let result = project.carry_out(
        &plan,
        &mut session,
        SessionOptions::default(),
        &runtime,
        async |session: &mut Session, backends: Vec<crate::mcp::Backend>, _| {
            project.check_lock(&plan, session, &backends, LockMode::Update)?;
            Ok(())
        },
    )?;
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    let exit = super::exit_status(&result);
    match result {
        Err(Stop::Failed(error)) => Err(error),
        Err(Stop::ClientLeft) => Ok(exit),
        Err(Stop::Interrupted(signal)) => {
            crate::output::status!(
                "outrig lock: stopped by {}; outrig.lock unchanged",
                signal.name()
            );
            Ok(exit)
        }
        Ok(()) => {
            let wrote = session.record.lock.as_ref().is_some_and(|l| l.wrote);
            if !wrote {
                crate::output::status!(
                    "outrig lock: `{}` already pins what runs; unchanged",
                    lock_path.display()
                );
            }
            Ok(ExitStatus::Success)
        }
    }
}
