//! `outrig clean`: remove this project's containers whose session is gone (`--all-projects`:
//! any project's), session records that ended longer ago than `--older-than`, and with
//! `--images` this project's images nothing uses any more. Never touches a running or kept
//! session. A record left `running` by a dead process is written down as `crashed` and
//! swept like a finished one. Load → removal plan → render → (`--dry-run` stops) → carry
//! out; `--json` prints the plan.

use crate::cli::{CleanArgs, GlobalArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::project::Project;
use crate::project::sweep::Sweep;

pub fn run(global: &GlobalArgs, args: &CleanArgs, env: Environment) -> Result<ExitStatus, Error> {
    let max_age = parse_age(&args.older_than).ok_or_else(|| {
        Error::new(format!("`--older-than {}` is not an age", args.older_than))
            .hint("for example `30d`, `12h` or `90m`")
    })?;
    let project = if args.all_projects {
        None
    } else {
        let project = Project::load(global.config.as_deref(), env.clone(), args.root.session_root.as_deref())
            .map_err(|e| {
                e.hint("`outrig clean` acts on the project whose outrig.toml it finds; pass `--all-projects` to clean every project's containers and records")
            })?;
        Some(project)
    };
    let sweep = match &project {
        Some(project) => Sweep::project(project),
        None => Sweep::all_projects(&env, super::session_root(global, &args.root, &env)),
    };
    let found = sweep.look(project.as_ref().filter(|_| args.images))?;
    let plan = crate::plan::removal::clean(
        &sweep.inputs(&found, jiff::Timestamp::now()),
        max_age,
        args.images,
    );
    super::remove(&sweep, &plan, args.dry_run, args.json)
}

/// `30d`, `12h`, `90m`, `45s` → seconds.
fn parse_age(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::parse_age("30d"), Some(30 * 86_400));
        assert_eq!(super::parse_age("0s"), Some(0));
        assert_eq!(super::parse_age("5"), None);
        assert_eq!(super::parse_age("d"), None);
    }
}
