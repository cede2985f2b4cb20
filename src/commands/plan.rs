//! `outrig plan`: load the project, compute the plan, show it (and save it with `--out`).

use crate::cli::{GlobalArgs, PlanArgs, PlanTarget};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::plan::desired::Target;
use crate::plan::render::{self, Detail};
use crate::project::Project;

pub fn run(global: &GlobalArgs, args: &PlanArgs, env: Environment) -> Result<ExitStatus, Error> {
    let project = Project::load(global.config.as_deref(), env, args.session_root.as_deref())?;
    if args.target == PlanTarget::Kube {
        return kube(&project, args);
    }
    let plan = project.plan(Target::Agent(args.agent.as_deref()), None)?;
    if let Some(path) = &args.out {
        let path = project.env.cwd.join(path);
        crate::fs::write_atomic_shared(&path, render::json(&plan).as_bytes()).map_err(|e| {
            Error::new(format!("cannot write the plan to `{}`", path.display()))
                .cause(e.to_string())
        })?;
    }
    if args.json {
        crate::output::stdout(&render::json(&plan));
    } else {
        crate::output::stdout_styled(&render::human(&plan, detail(global)));
        if let Some(path) = &args.out {
            crate::output::status!(
                "saved the plan to `{}`; `outrig apply {}` runs exactly this plan",
                path.display(),
                path.display()
            );
        }
    }
    Ok(if args.detailed_exitcode && plan.summary.has_changes {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    })
}

/// How much of a plan to show, from `--verbose`.
pub fn detail(global: &GlobalArgs) -> Detail {
    Detail {
        verbose: global.verbose > 0,
    }
}

/// `--target kube`: the resources `outrig export kube` writes (with its default options),
/// and the plan's security section.
fn kube(project: &Project, args: &PlanArgs) -> Result<ExitStatus, Error> {
    if args.out.is_some() || args.detailed_exitcode {
        return Err(Error::new(
            "`--target kube` shows the export; it has no saved plan and no changes to count",
        )
        .hint("write the manifests with `outrig export kube --out DIR`"));
    }
    let selection = crate::project::kube::Selection {
        agent: args.agent.as_deref(),
        image: None,
        tools: &[],
    };
    let (export, plan) = project.kube_export(&selection, Default::default())?;
    if args.json {
        crate::output::stdout(&render::kube::json(&export));
    } else {
        let mut text = render::kube::human(&export);
        let width = plan
            .security_deltas
            .iter()
            .map(|d| d.address.to_string().len())
            .max()
            .unwrap_or(0);
        text.push_str(&render::security_section(&plan, width));
        crate::output::stdout_styled(&text);
    }
    Ok(ExitStatus::Success)
}
