//! `outrig show PLANFILE|SESSION`: a saved plan, or the plan a session carried out, as
//! `outrig plan` showed it (or its JSON).

use crate::cli::{GlobalArgs, ShowArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::plan::render;
use crate::session;

pub fn run(global: &GlobalArgs, args: &ShowArgs, env: Environment) -> Result<ExitStatus, Error> {
    let file = env.cwd.join(&args.target);
    // Session ids are plain words; anything that names a file is a plan file.
    let names_a_file = args.target.contains('/') || args.target.ends_with(".json");
    let plan = if file.exists() || names_a_file {
        super::read_plan(&file)?
    } else {
        let root = super::session_root(global, &args.root, &env);
        let (id, dir) = session::locate(&root, &args.target)
            .map_err(|e| e.cause(format!("and there is no plan file `{}`", file.display())))?;
        let path = dir.join(session::PLAN_FILE);
        if !path.exists() {
            return Err(Error::new(format!("session {id} has no plan on record"))
                .cause(format!("`{}` does not exist", path.display()))
                .hint("sessions recorded by an older outrig have none; `outrig logs` and `session.json` still tell what ran"));
        }
        super::read_plan(&path)?
    };
    if args.json {
        crate::output::stdout(&render::json(&plan));
    } else {
        crate::output::stdout_styled(&render::human(&plan, super::plan::detail(global)));
    }
    Ok(ExitStatus::Success)
}
