//! `outrig show PLANFILE`: a saved plan, as `outrig plan` showed it (or its JSON).

use crate::cli::{GlobalArgs, ShowArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::plan::render;

pub fn run(global: &GlobalArgs, args: &ShowArgs, env: Environment) -> Result<ExitStatus, Error> {
    let plan = super::read_plan(&env.cwd.join(&args.plan_file))?;
    if args.json {
        crate::output::stdout(&render::json(&plan));
    } else {
        crate::output::stdout_styled(&render::human(&plan, super::plan::detail(global)));
    }
    Ok(ExitStatus::Success)
}
