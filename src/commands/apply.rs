//! `outrig apply`: plan (or read a saved plan and check it is still current), show it,
//! confirm, carry it out in a new session, and record the outcome.

use std::io::{BufRead, IsTerminal};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::agent::setup::AgentSetup;
use crate::agent::{Agent, repl};
use crate::apply::pin::LockMode;
use crate::apply::{self, Stop};
use crate::cli::{ApplyArgs, GlobalArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::mcp::toolbox::Toolbox;
use crate::plan::desired::Target;
use crate::plan::{compare, render};
use crate::project::Project;
use crate::project::runner::SessionOptions;
use crate::session::Session;

pub fn run(global: &GlobalArgs, args: &ApplyArgs, env: Environment) -> Result<ExitStatus, Error> {
    let project = Project::load(global.config.as_deref(), env, args.session_root.as_deref())?;
    // A saved plan is read (and refused if unreadable) before podman is asked anything.
    let saved = match &args.plan_file {
        Some(path) => Some((path, super::read_plan(&project.env.cwd.join(path))?)),
        None => None,
    };
    // A saved plan names its agent; `--agent` may only repeat it (else the plans differ).
    let agent = args
        .agent
        .as_deref()
        .or(saved.as_ref().and_then(|(_, s)| s.agent.as_deref()));
    let fresh = project.plan(Target::Agent(agent), None)?;
    let plan = match saved {
        Some((path, saved)) => compare::require_equal(path, saved, fresh)?,
        None => fresh,
    };
    // What the agent will be asked, decided before anything starts.
    let interaction = match &plan.agent {
        Some(name) => interaction(args, name)?,
        None => Interaction::None,
    };
    let agent_setup = match (&plan.agent, &interaction) {
        (Some(name), Interaction::OneShot(_) | Interaction::Repl) => {
            Some(AgentSetup::new(project.config(), name, &project.lookup())?)
        }
        _ => None,
    };
    let lock_mode = LockMode::from_flags(args.lock.locked, args.lock.update_lock);
    apply::pin::refuse_before_start(&plan, &project.lock_path(), lock_mode)?;
    // What is shown is exactly what runs: the operations of these steps.
    crate::output::stderr(&render::human(&plan, super::plan::detail(global)));
    if !args.auto_approve {
        confirm()?;
    }
    let mut session = project.begin_session(&plan, args.session_dir.as_deref(), "apply")?;
    if let Some(setup) = &agent_setup {
        let primary = setup.primary();
        session.record.model = Some(format!("{} ({})", primary.model_name, primary.identifier));
        session.record.provider = Some(format!("{} ({})", primary.provider_name, primary.base_url));
        let _ = session.save();
    }
    crate::output::status!(
        "\nsession {} ({})",
        session.record.id,
        session.dir.display()
    );
    let interrupts = Arc::new(AtomicBool::new(false));
    let options = SessionOptions {
        secrets: agent_setup
            .as_ref()
            .map(|setup| setup.secrets.clone())
            .unwrap_or_default(),
        keep: args.keep,
        interrupts_handled: Some(interrupts.clone()),
        ..SessionOptions::default()
    };
    let runtime = super::runtime()?;
    let result = project.carry_out(
        &plan,
        &mut session,
        options,
        &runtime,
        async |session: &mut Session, backends: Vec<crate::mcp::Backend>, redactor| {
            let checked = project.check_lock(&plan, session, &backends, lock_mode)?;
            if lock_mode == LockMode::Locked && !checked.withheld.is_empty() {
                return Err(apply::pin::refusal(&checked));
            }
            let Some(setup) = agent_setup else {
                if let Interaction::NoPrompt = interaction {
                    crate::output::status!(
                        "no prompt (stdin is not a terminal and gave none, and no --prompt): the agent did not run"
                    );
                }
                return Ok(());
            };
            let toolbox = Arc::new(
                Toolbox::new(
                    backends,
                    &setup.allow,
                    session.open_log("tools.jsonl")?,
                    Arc::new(session.open_log("outrig.log")?),
                    redactor.clone(),
                )
                .counting(session.call_counter()),
            );
            let routes = setup.routes(!args.no_stream).map_err(|e| Error::new(e.message))?;
            let mut agent = Agent::new(setup.settings, routes, toolbox, session.open_log("transcript.jsonl")?, redactor);
            let result = match &interaction {
                Interaction::OneShot(prompt) => repl::one_shot(&mut agent, prompt).await,
                _ => repl::repl(&mut agent, interrupts.clone()).await,
            };
            let spent = agent.spent();
            session.record.usage = Some(crate::session::UsageRecord {
                requests: spent.requests,
                input_tokens: spent.usage.input_tokens,
                output_tokens: spent.usage.output_tokens,
            });
            let _ = session.save();
            result
        },
    )?;
    // The REPL's line editor may still wait for a line in a blocking thread (a signal
    // arrived at the prompt): do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    let exit = super::exit_status(&result);
    match result {
        Err(Stop::Failed(error)) => return Err(error),
        Err(Stop::ClientLeft) => return Ok(exit),
        Err(Stop::Interrupted(signal)) => {
            crate::output::status!(
                "interrupted by {}: session {} recorded, sandbox removed",
                signal.name(),
                session.record.id
            );
            return Ok(exit);
        }
        Ok(()) => {}
    }
    let tools: usize = session.record.servers.values().map(|s| s.tools.len()).sum();
    crate::output::status!(
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

/// How the agent is talked to in this apply.
enum Interaction {
    /// No agent selected.
    None,
    /// `--prompt`, or a prompt piped on stdin.
    OneShot(String),
    /// A terminal: the REPL.
    Repl,
    /// stdin is not a terminal and gave nothing: the servers are proven, no agent runs.
    NoPrompt,
}

fn interaction(args: &ApplyArgs, agent: &str) -> Result<Interaction, Error> {
    if let Some(prompt) = &args.prompt {
        if prompt.trim().is_empty() {
            return Err(Error::new("`--prompt` is empty").hint("give the agent a task"));
        }
        return Ok(Interaction::OneShot(prompt.clone()));
    }
    if crate::output::stdin_stream().is_terminal() {
        return Ok(Interaction::Repl);
    }
    let mut prompt = String::new();
    std::io::Read::read_to_string(&mut crate::output::stdin_stream(), &mut prompt).map_err(
        |e| {
            Error::new(format!(
                "cannot read the prompt for agent `{agent}` from stdin"
            ))
            .cause(e.to_string())
        },
    )?;
    Ok(if prompt.trim().is_empty() {
        Interaction::NoPrompt
    } else {
        Interaction::OneShot(prompt)
    })
}

/// Ask on the terminal; refuse without one.
fn confirm() -> Result<(), Error> {
    if !crate::output::stdin_stream().is_terminal() {
        return Err(
            Error::new("refusing to apply without confirmation: stdin is not a terminal")
                .hint("review the plan above and pass `--auto-approve`"),
        );
    }
    crate::output::stderr("\nApply this plan? Only `yes` is accepted: ");
    let mut answer = String::new();
    crate::output::stdin_stream()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::new("cannot read the answer").cause(e.to_string()))?;
    if answer.trim() != "yes" {
        return Err(Error::new("apply cancelled"));
    }
    Ok(())
}
