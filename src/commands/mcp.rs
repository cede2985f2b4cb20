//! `outrig mcp`: start (or attach to) the sandbox of one image, start its MCP servers, and
//! serve their tools as one MCP server on stdio until the client closes it. Builds nothing
//! unless `--build`: a client must never wait on an image build.

use std::sync::Arc;
use std::time::Duration;

use crate::apply::{self, Stop};
use crate::cli::{GlobalArgs, McpArgs, McpClient};
use crate::config::Config;
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::mcp::gateway;
use crate::mcp::toolbox::Toolbox;
use crate::plan::desired::Target;
use crate::plan::{Action, Address, Plan};
use crate::project::Project;
use crate::session::{self, Session, Status};

pub fn run(global: &GlobalArgs, args: &McpArgs, env: Environment) -> Result<ExitStatus, Error> {
    if let Some(client) = args.print_config {
        return print_config(global, args, client, &env);
    }
    let project = Project::load(global.config.as_deref(), env, args.session_root.as_deref())?;
    let target = target(project.config(), args)?;
    let (image, allow) = selection(project.config(), args, target)?;
    let attach = match &args.attach {
        Some(wanted) => Some(attached_container(&project, wanted, &image)?),
        None => None,
    };
    let plan = project.plan(target, attach.as_deref().map(|c| (image.as_str(), c)))?;
    let plan = narrow(&plan, &image, &allow, args.build)?;
    let mut session = project.begin_session(&plan, args.session_dir.as_deref(), "mcp")?;
    session.record.attached_to = attach.clone();
    let _ = session.save();
    crate::status!(
        "outrig mcp: session {} ({})",
        session.record.id,
        session.dir.display()
    );
    let env = project.lookup();
    let key = project.fingerprint_key()?;
    let redactor = project.redactor(&plan.desired);
    let events = Arc::new(session.open_log("outrig.log")?);
    let audit = session.open_log("tools.jsonl")?;
    let context = apply::Context {
        runtime: project.runtime.clone(),
        engine: &project.engine,
        env: &env,
        key: &key,
        redactor: redactor.clone(),
        keep: false,
        interrupts_handled: None,
        signals: apply::SignalSource::Process,
    };
    let runtime = super::runtime()?;
    let result = runtime.block_on(apply::apply(
        &plan,
        &mut session,
        &context,
        async |session: &mut Session, backends| {
            let toolbox = Arc::new(Toolbox::new(
                backends,
                &allow,
                audit,
                events.clone(),
                redactor,
            ));
            let message = format!(
                "serving {} tools of {} servers on stdio",
                toolbox.tools().len(),
                toolbox.backends().len()
            );
            crate::status!("outrig mcp: {message}");
            events.event(&message);
            let served = gateway::serve_stdio(toolbox.clone(), events.clone()).await;
            for key in toolbox.exited() {
                if let Some(record) = session.record.servers.get_mut(key) {
                    record.exited = Some("exited while the gateway was serving".to_string());
                }
            }
            served.map_err(|e| Error::new("the MCP session with the client failed").cause(e))
        },
    ));
    // stdin may still be read by a blocking thread; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    events.event("session ended");
    let exit = super::finish_session(&mut session, &result, Status::Finished)?;
    match result {
        Err(Stop::Failed(error)) => Err(error),
        Err(Stop::Interrupted(signal)) => {
            crate::status!(
                "outrig mcp: stopped by {}; session {} recorded",
                signal.name(),
                session.record.id
            );
            Ok(exit)
        }
        Ok(()) => {
            crate::status!(
                "outrig mcp: the client closed the session; session {} recorded",
                session.record.id
            );
            Ok(ExitStatus::Success)
        }
    }
}

/// What to plan for: the agent (named or default), or one image.
fn target<'a>(config: &Config, args: &'a McpArgs) -> Result<Target<'a>, Error> {
    if let Some(image) = &args.image {
        return Ok(Target::Image(image));
    }
    if args.agent.is_some() || config.default_agent.is_some() {
        return Ok(Target::Agent(args.agent.as_deref()));
    }
    // Without a default agent, fall back to the only image with servers.
    let with_servers: Vec<&String> = config
        .images
        .iter()
        .filter(|(_, i)| !i.servers.is_empty())
        .map(|(n, _)| n)
        .collect();
    match with_servers.as_slice() {
        [_] => Ok(Target::Agent(None)),
        [] => Err(Error::new("no image in the config has MCP servers")
            .hint("add `[images.<name>.mcp.<server>]` with a `command`")),
        several => Err(
            Error::new("several images have MCP servers; choose one").hint(format!(
                "pass `--image NAME` ({}) or `--agent NAME`",
                several
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
    }
}

/// The image to serve and the tool allow-list (the agent's, narrowed by `--tools`).
fn selection(
    config: &Config,
    args: &McpArgs,
    target: Target<'_>,
) -> Result<(String, Vec<Vec<String>>), Error> {
    let (agent, images) = crate::plan::desired::select(config, target)?;
    let agent = agent.as_ref().and_then(|name| config.agents.get(name));
    let image = match (&args.image, agent) {
        (Some(image), _) => image.clone(),
        (None, Some(agent)) => agent.image.clone(),
        (None, None) => images
            .first()
            .map(|i| i.to_string())
            .ok_or_else(|| Error::new("no image in the config has MCP servers"))?,
    };
    if config
        .images
        .get(&image)
        .is_none_or(|i| i.servers.is_empty())
    {
        return Err(
            Error::new(format!("image `{image}` has no MCP servers")).hint(format!(
                "add `[images.{image}.mcp.<server>]` with a `command`"
            )),
        );
    }
    // Every list must match: the agent's allow-list, then `--tools`.
    let mut allow: Vec<Vec<String>> = agent.and_then(|a| a.tools.clone()).into_iter().collect();
    if !args.tools.is_empty() {
        allow.push(args.tools.clone());
    }
    Ok((image, allow))
}

/// The part of `plan` this gateway carries out: the image's sandbox and servers, and its
/// build or pull only with `--build`. Pending builds without it are an error.
fn narrow(plan: &Plan, image: &str, allow: &[Vec<String>], build: bool) -> Result<Plan, Error> {
    let pending = plan.steps.iter().find(|s| {
        s.address == Address::Image(image.to_string())
            && matches!(s.action, Action::Create | Action::Replace)
    });
    if let (Some(step), false) = (pending, build) {
        let what = if plan.desired.images[image].build.is_some() {
            "built"
        } else {
            "pulled"
        };
        return Err(Error::new(format!(
            "image `{image}` must be {what} before its tools can be served ({})",
            crate::plan::render::reasons(plan, step)
        ))
        .hint("run `outrig apply` first, or start the gateway with `outrig mcp --build`"));
    }
    let mut narrowed = plan.clone();
    narrowed.steps.retain(|s| match &s.address {
        Address::Image(name) => name == image && build,
        Address::Sandbox(name) => name == image,
        Address::Server { image: of, server } => of == image && may_publish(server, allow),
        Address::Agent(_) | Address::Container(_) => false,
    });
    if !narrowed
        .steps
        .iter()
        .any(|s| matches!(&s.address, Address::Server { .. }))
    {
        return Err(Error::new(format!(
            "no server of image `{image}` can offer a tool the allow-lists accept"
        ))
        .hint("check the agent's `tools` and `--tools`"));
    }
    Ok(narrowed)
}

/// Whether some tool of `server` could match every allow-list (by the server part of
/// each `<server>__<tool>` pattern); servers that could not are not started at all.
fn may_publish(server: &str, allow: &[Vec<String>]) -> bool {
    allow.iter().all(|patterns| {
        patterns
            .iter()
            .any(|pattern| match pattern.split_once("__") {
                Some((server_part, _)) => crate::glob::glob_match(server_part, server),
                // `*`, `fs*`: may match across the separator.
                None => {
                    crate::glob::glob_match(pattern, &format!("{server}__x"))
                        || pattern.contains('*')
                }
            })
    })
}

/// The container of a kept sandbox named by session id or container name.
fn attached_container(project: &Project, wanted: &str, image: &str) -> Result<String, Error> {
    let config = project.config();
    let project_id = &crate::plan::desired::project_id(&config.project, &config.root);
    let from_session = session::records(&project.session_root, project_id)
        .into_iter()
        .find(|r| r.id == wanted)
        .map(|record| {
            record
                .containers
                .get(image)
                .filter(|c| !c.removed && record.status == Status::Kept)
                .map(|c| c.name.clone())
                .ok_or_else(|| {
                    Error::new(format!(
                        "session {wanted} has no kept sandbox of image `{image}` (it is {:?})",
                        record.status
                    ))
                    .hint("keep one with `outrig apply --keep`")
                })
        });
    let name = match from_session {
        Some(found) => found?,
        None => wanted.to_string(),
    };
    let format = format!(
        "{{{{index .Config.Labels \"{}\"}}}} {{{{index .Config.Labels \"{}\"}}}} {{{{.State.Running}}}}",
        crate::podman::labels::PROJECT_ID,
        crate::podman::labels::SANDBOX
    );
    let command = project
        .podman()
        .args(["container", "inspect", "--format", &format, &name]);
    let output = project.runtime.run(&command).map_err(|e| {
        Error::new(format!(
            "`{wanted}` is neither a session nor a container of this project"
        ))
        .cause(e.to_string())
        .hint("`outrig ls` lists sessions; kept ones say `kept`")
    })?;
    let fields: Vec<&str> = output.stdout.split_whitespace().collect();
    match fields.as_slice() {
        [id, sandbox, running] if id == project_id && *sandbox == image && *running == "true" => {
            Ok(name)
        }
        [id, _, _] if id != project_id => Err(Error::new(format!(
            "container `{name}` is not a sandbox of this project"
        ))),
        [_, sandbox, _] if *sandbox != image => Err(Error::new(format!(
            "container `{name}` is a sandbox of image `{sandbox}`, not `{image}`"
        ))
        .hint(format!("pass `--image {sandbox}`"))),
        _ => Err(Error::new(format!("container `{name}` is not running"))
            .hint("start a new sandbox without `--attach`")),
    }
}

/// `--print-config CLIENT`: the snippet that makes CLIENT start this gateway.
fn print_config(
    global: &GlobalArgs,
    args: &McpArgs,
    client: McpClient,
    env: &Environment,
) -> Result<ExitStatus, Error> {
    let loaded = crate::config::load(global.config.as_deref(), &env.cwd, &|name| {
        env.var(name).is_some()
    })?;
    let config = &loaded.config;
    let program = env
        .current_exe()
        .map_err(|e| Error::new("cannot find outrig's own path").cause(e.to_string()))?;
    let mut command_args: Vec<String> = vec![
        "--config".into(),
        config.path.display().to_string(),
        "mcp".into(),
    ];
    if let Some(agent) = &args.agent {
        command_args.extend(["--agent".into(), agent.clone()]);
    }
    if let Some(image) = &args.image {
        command_args.extend(["--image".into(), image.clone()]);
    }
    for pattern in &args.tools {
        command_args.extend(["--tools".into(), pattern.clone()]);
    }
    // Variables the servers read through `${VAR}`: the client must pass them on.
    let mut variables: Vec<String> = config
        .images
        .values()
        .flat_map(|i| i.servers.values())
        .flat_map(|s| s.env.values())
        .flat_map(|v| crate::secret::references(v))
        .collect();
    variables.sort();
    variables.dedup();
    let name = format!("outrig-{}", config.project);
    let program = program.display().to_string();
    let text = snippet(client, &name, &program, &command_args, &variables);
    crate::output::stdout(&text);
    crate::status!(
        "{}",
        match client {
            McpClient::ClaudeCode => format!(
                "put this in `.mcp.json` at the project root, or run: claude mcp add {name} -- {program} {}",
                command_args.join(" ")
            ),
            McpClient::Codex => "add this to `~/.codex/config.toml`".to_string(),
            McpClient::Cursor =>
                "put this in `.cursor/mcp.json` (merge `mcpServers` with what is there)".to_string(),
            McpClient::Vscode =>
                "put this in `.vscode/mcp.json` (merge `servers` with what is there)".to_string(),
        }
    );
    Ok(ExitStatus::Success)
}

fn snippet(
    client: McpClient,
    name: &str,
    program: &str,
    args: &[String],
    variables: &[String],
) -> String {
    let env = |form: &dyn Fn(&str) -> String| -> serde_json::Map<String, serde_json::Value> {
        variables
            .iter()
            .map(|v| (v.clone(), serde_json::Value::String(form(v))))
            .collect()
    };
    let json = |value: serde_json::Value| {
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    };
    match client {
        McpClient::ClaudeCode => json(serde_json::json!({
            "mcpServers": { name: {
                "type": "stdio", "command": program, "args": args,
                "env": env(&|v| format!("${{{v}}}")),
            }}
        })),
        McpClient::Cursor => json(serde_json::json!({
            "mcpServers": { name: {
                "type": "stdio", "command": program, "args": args,
                "env": env(&|v| format!("${{env:{v}}}")),
            }}
        })),
        McpClient::Vscode => json(serde_json::json!({
            "servers": { name: {
                "type": "stdio", "command": program, "args": args,
                "env": env(&|v| format!("${{env:{v}}}")),
            }}
        })),
        McpClient::Codex => {
            let mut doc = toml_edit::DocumentMut::new();
            let mut table = toml_edit::Table::new();
            table.insert("command", toml_edit::value(program));
            let mut list = toml_edit::Array::new();
            for arg in args {
                list.push(arg.as_str());
            }
            table.insert("args", toml_edit::value(list));
            if !variables.is_empty() {
                let mut forwarded = toml_edit::Array::new();
                for v in variables {
                    forwarded.push(v.as_str());
                }
                table.insert("env_vars", toml_edit::value(forwarded));
            }
            let mut servers = toml_edit::Table::new();
            servers.set_implicit(true);
            servers.insert(name, toml_edit::Item::Table(table));
            doc.insert("mcp_servers", toml_edit::Item::Table(servers));
            doc.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_publish;

    #[test]
    fn servers_outside_every_allow_list_are_not_started() {
        let lists = |l: &[&[&str]]| -> Vec<Vec<String>> {
            l.iter()
                .map(|p| p.iter().map(|s| s.to_string()).collect())
                .collect()
        };
        assert!(may_publish("fs", &[]));
        assert!(may_publish(
            "fs",
            &lists(&[&["fs__*", "time__get_current_time"]])
        ));
        assert!(!may_publish(
            "everything",
            &lists(&[&["fs__*", "time__get_current_time"]])
        ));
        assert!(may_publish("everything", &lists(&[&["*"]])));
        assert!(!may_publish(
            "time",
            &lists(&[&["fs__*", "time__*"], &["fs__read*"]])
        ));
    }
}
