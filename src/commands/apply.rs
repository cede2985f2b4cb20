//! `outrig apply`: plan (or read a saved plan and check it is still current), show it,
//! confirm, carry it out in a new session, and record the outcome.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::agent::provider::Provider;
use crate::agent::{Agent, Settings, repl};
use crate::apply::{self, Stop};
use crate::cli::{ApplyArgs, GlobalArgs};
use crate::error::{Error, ExitStatus};
use crate::mcp::toolbox::Toolbox;
use crate::plan::{Plan, render};
use crate::session::Session;
use crate::session::Status;
use crate::session::log::Redactor;

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
    // What the agent will be asked, decided before anything starts.
    let interaction = match &plan.agent {
        Some(name) => interaction(args, name)?,
        None => Interaction::None,
    };
    let agent_setup = match (&plan.agent, &interaction) {
        (Some(name), Interaction::OneShot(_) | Interaction::Repl) => {
            Some(agent_setup(&computed.config, name)?)
        }
        _ => None,
    };
    anstream::eprint!("{}", render::human(&plan));
    if !args.auto_approve {
        confirm()?;
    }
    let mut session = super::begin_session(&computed, &plan, args.session_dir.as_deref(), "apply")?;
    if let Some(setup) = &agent_setup {
        session.record.model = Some(format!("{} ({})", setup.model_name, setup.settings.model));
        session.record.provider = Some(format!("{} ({})", setup.provider_name, setup.base_url));
        let _ = session.save();
    }
    anstream::eprintln!(
        "\nsession {} ({})",
        session.record.id,
        session.dir.display()
    );
    let env = |name: &str| std::env::var(name).ok();
    let interrupts = Arc::new(AtomicBool::new(false));
    let context = apply::Context {
        engine: &computed.engine,
        root: &computed.root,
        env: &env,
        keep: args.keep,
        attach: None,
        interrupts_handled: Some(interrupts.clone()),
    };
    let runtime = super::runtime()?;
    let result = runtime.block_on(apply::apply(
        &plan,
        &mut session,
        &context,
        async |session: &mut Session, backends| {
            let Some(setup) = agent_setup else {
                if let Interaction::NoPrompt = interaction {
                    anstream::eprintln!(
                        "no prompt (stdin is not a terminal and gave none, and no --prompt): the agent did not run"
                    );
                }
                return Ok(());
            };
            let mut redactor = Redactor::for_desired(&plan.desired, &env);
            for secret in &setup.secrets {
                redactor.add(secret.clone());
            }
            let toolbox = Arc::new(Toolbox::new(
                backends,
                &setup.allow,
                session.open_log("tools.jsonl")?,
                Arc::new(session.open_log("outrig.log")?),
                redactor.clone(),
            ));
            let provider = setup.provider().map_err(|e| Error::new(e.message))?;
            let mut agent = Agent::new(setup.settings, provider, toolbox, session.open_log("transcript.jsonl")?, redactor);
            match &interaction {
                Interaction::OneShot(prompt) => repl::one_shot(&mut agent, prompt).await,
                _ => repl::repl(&mut agent, interrupts.clone()).await,
            }
        },
    ));
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
    if std::io::stdin().is_terminal() {
        return Ok(Interaction::Repl);
    }
    let mut prompt = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut prompt).map_err(|e| {
        Error::new(format!(
            "cannot read the prompt for agent `{agent}` from stdin"
        ))
        .cause(e.to_string())
    })?;
    Ok(if prompt.trim().is_empty() {
        Interaction::NoPrompt
    } else {
        Interaction::OneShot(prompt)
    })
}

/// The agent's settings and provider, with the API key read now: an unset variable stops
/// the apply before anything starts.
struct AgentSetup {
    settings: Settings,
    model_name: String,
    provider_name: String,
    base_url: String,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    request_timeout: std::time::Duration,
    retry_budget: std::time::Duration,
    allow: Vec<Vec<String>>,
    /// Values to redact: the key and header secrets.
    secrets: Vec<String>,
}

impl AgentSetup {
    fn provider(&self) -> Result<Provider, crate::agent::provider::ProviderError> {
        Provider::new(
            &self.provider_name,
            &self.base_url,
            self.api_key.clone(),
            self.headers.clone(),
            self.request_timeout,
            self.retry_budget,
        )
    }
}

fn agent_setup(config: &crate::config::Config, name: &str) -> Result<AgentSetup, Error> {
    let agent = &config.agents[name];
    let model = &config.models[&agent.model];
    let provider = &config.providers[&model.provider];
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut secrets = Vec::new();
    let api_key = match &provider.api_key_variable {
        Some(variable) => {
            let Some(key) = env(variable) else {
                return Err(Error::new(format!(
                    "the API key of provider `{}` is not set: `{variable}` is empty or unset",
                    provider.name
                ))
                .hint(format!("export {variable}=... (the key is read from the environment, never from a file)")));
            };
            secrets.push(key.clone());
            Some(key)
        }
        None => None,
    };
    let mut headers = Vec::new();
    for (header, template) in &provider.headers {
        let Some(value) = crate::plan::desired::resolve_template(template, &env) else {
            return Err(Error::new(format!(
                "header `{header}` of provider `{}` uses a variable that is not set ({template})",
                provider.name
            )));
        };
        if value != *template {
            for variable in crate::config::env_ref::references(template) {
                secrets.extend(env(&variable));
            }
        }
        headers.push((header.clone(), value));
    }
    Ok(AgentSetup {
        settings: Settings {
            model: model.identifier.clone(),
            system_prompt: agent.system_prompt.clone(),
            temperature: model.temperature,
            max_tokens: model.max_tokens,
            tool_call_max: agent.tool_call_max,
            tool_result_max: agent.tool_result_max,
        },
        model_name: model.name.clone(),
        provider_name: provider.name.clone(),
        base_url: provider.base_url.clone(),
        api_key,
        headers,
        request_timeout: provider.request_timeout,
        retry_budget: provider.retry_budget,
        allow: agent.tools.clone().into_iter().collect(),
        secrets,
    })
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
