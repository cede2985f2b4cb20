//! `outrig apply`: plan (or read a saved plan and check it is still current), show it,
//! confirm, carry it out in a new session, and record the outcome.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::apply::{self, Stop};
use crate::cli::{ApplyArgs, GlobalArgs};
use crate::error::{Error, ExitStatus};
use crate::plan::{Plan, render};
use crate::session::Status;

pub fn run(global: &GlobalArgs, args: &ApplyArgs, cwd: &Path) -> Result<ExitStatus, Error> {
    let computed = super::plan::compute(
        global,
        crate::plan::desired::Target::Agent(args.agent.as_deref()),
        args.session_root.as_deref(),
        cwd,
    )?;
    let plan = match &args.plan_file {
        Some(path) => check_saved(path, &computed.plan)?,
        None => computed.plan.clone(),
    };
    anstream::eprint!("{}", render::human(&plan));
    if !args.auto_approve {
        confirm()?;
    }
    let mut session = super::begin_session(&computed, &plan, args.session_dir.as_deref(), "apply")?;
    anstream::eprintln!(
        "\nsession {} ({})",
        session.record.id,
        session.dir.display()
    );
    let env = |name: &str| std::env::var(name).ok();
    let context = apply::Context {
        engine: &computed.engine,
        root: &computed.root,
        env: &env,
        keep: args.keep,
        attach: None,
    };
    let runtime = super::runtime()?;
    let result = runtime.block_on(apply::apply(&plan, &mut session, &context, async |_, _| {
        Ok(())
    }));
    let exit = super::finish_session(
        &mut session,
        &result,
        if args.keep {
            Status::Kept
        } else {
            Status::Finished
        },
    )?;
    match result {
        Err(Stop::Failed(error)) => return Err(error),
        Err(Stop::Interrupted(signal)) => {
            anstream::eprintln!(
                "interrupted by {}: session {} recorded, sandbox removed",
                signal.name(),
                session.record.id
            );
            return Ok(exit);
        }
        Ok(()) => {}
    }
    let tools: usize = session.record.servers.values().map(|s| s.tools.len()).sum();
    anstream::eprintln!(
        "applied: {} server(s) answered with {tools} tools; {}",
        session.record.servers.len(),
        if args.keep {
            "the sandbox is kept running (`outrig destroy` removes it)"
        } else {
            "the sandbox was removed"
        }
    );
    Ok(ExitStatus::Success)
}

/// A saved plan, if it is still what a fresh plan would be.
fn check_saved(path: &Path, current: &Plan) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(format!("cannot read the plan `{}`", path.display())).cause(e.to_string())
    })?;
    let saved: Plan = serde_json::from_str(&text).map_err(|e| {
        Error::new(format!("`{}` is not an outrig plan", path.display()))
            .cause(e.to_string())
            .hint("save one with `outrig plan --out FILE`")
    })?;
    if saved.format_version != crate::plan::FORMAT_VERSION {
        return Err(Error::new(format!(
            "the plan `{}` has format version {}, this outrig reads {}",
            path.display(),
            saved.format_version,
            crate::plan::FORMAT_VERSION
        )));
    }
    if saved.config_digest != current.config_digest {
        return Err(Error::new(format!(
            "the plan `{}` is stale: the config or its inputs changed since it was made",
            path.display()
        ))
        .hint("run `outrig plan --out FILE` again and review it"));
    }
    if saved.observed_fingerprint != current.observed_fingerprint {
        return Err(Error::new(format!(
            "the plan `{}` is stale: podman's images or containers changed since it was made",
            path.display()
        ))
        .hint("run `outrig plan --out FILE` again and review it"));
    }
    Ok(saved)
}

/// Ask on the terminal; refuse without one.
fn confirm() -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(
            Error::new("refusing to apply without confirmation: stdin is not a terminal")
                .hint("review the plan above and pass `--auto-approve`"),
        );
    }
    eprint!("\nApply this plan? Only `yes` is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::new("cannot read the answer").cause(e.to_string()))?;
    if answer.trim() != "yes" {
        return Err(Error::new("apply cancelled"));
    }
    Ok(())
}
