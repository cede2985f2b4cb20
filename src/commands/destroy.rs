//! `outrig destroy`: remove this project's sandboxes that no running session owns (kept
//! ones, and orphans of killed sessions), and mark kept sessions as ended. Load → removal
//! plan → render → (`--dry-run` stops) → carry out; `--json` prints the plan.

use crate::cli::{DestroyArgs, GlobalArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::project::Project;
use crate::project::sweep::Sweep;

pub fn run(global: &GlobalArgs, args: &DestroyArgs, env: Environment) -> Result<ExitStatus, Error> {
    let project = Project::load(
        global.config.as_deref(),
        env,
        args.root.session_root.as_deref(),
    )?;
    let sweep = Sweep::project(&project);
    let found = sweep.look(None)?;
    let plan =
        crate::plan::removal::destroy(&sweep.inputs(&found, jiff::Timestamp::now()), args.force)?;
    super::remove(&sweep, &plan, args.dry_run, args.json)
}
