//! `outrig mcp`: start (or attach to) the sandbox of one image, start its MCP servers, and
//! serve their tools as one MCP server on stdio until the client closes it. Builds nothing
//! unless `--build`: a client must never wait on an image build.

use std::sync::Arc;
use std::time::Duration;

use crate::apply::{self, Stop};
use crate::cli::{GlobalArgs, McpArgs, McpClient};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::mcp::gateway;
use crate::mcp::toolbox::Toolbox;
use crate::mcp::wiring;
use crate::plan::gateway::Served;
use crate::project::Project;
use crate::session::{Session, Status};

pub fn run(global: &GlobalArgs, args: &McpArgs, env: Environment) -> Result<ExitStatus, Error> {
    if let Some(client) = args.print_config {
        return print_config(global, args, client, &env);
    }
    let project = Project::load(global.config.as_deref(), env, args.session_root.as_deref())?;
    let served = Served::choose(
        project.config(),
        args.image.as_deref(),
        args.agent.as_deref(),
        &args.tools,
    )?;
    let (target, image, allow) = (served.target, served.image, served.allow);
    if let Some(server) = &args.unprefixed {
        let servers = &project.config().images[&image].servers;
        if !servers.contains_key(server) {
            let mut known: Vec<&str> = servers.keys().map(String::as_str).collect();
            known.sort();
            return Err(Error::new(format!(
                "--unprefixed {server}: image `{image}` has no server `{server}`"
            ))
            .hint(format!("its servers: {}", known.join(", "))));
        }
    }
    let attach = match &args.attach {
        Some(wanted) => Some(project.kept_sandbox(wanted, &image)?),
        None => None,
    };
    let plan = project.plan(target, attach.as_deref().map(|c| (image.as_str(), c)))?;
    let plan = crate::plan::gateway::narrow(&plan, &image, &allow, args.build)?;
    let lock_mode = apply::pin::LockMode::from_flags(args.lock.locked, args.lock.update_lock);
    apply::pin::refuse_before_start(&plan, &project.lock_path(), lock_mode)?;
    // A listener that cannot be had is refused before anything starts or is recorded.
    let runtime = super::runtime()?;
    let http = match args.listen {
        Some(address) => {
            let token = http_token(args, &project)?;
            let listener = runtime
                .block_on(crate::mcp::http::Listener::bind(address, args.allow_remote))
                .map_err(listen_error)?;
            Some((listener, token))
        }
        None => None,
    };
    let mut session = project.begin_session(&plan, args.session_dir.as_deref(), "mcp")?;
    session.record.attached_to = attach.clone();
    let _ = session.save();
    crate::output::status!(
        "outrig mcp: session {} ({})",
        session.record.id,
        session.dir.display()
    );
    let env = project.lookup();
    let key = project.fingerprint_key()?;
    let mut redactor = project.redactor(&plan.desired);
    if let Some((_, token)) = &http {
        redactor.add([token.value.clone()]);
    }
    let events = Arc::new(session.open_log("outrig.log")?);
    let audit = session.open_log("tools.jsonl")?;
    let context = project.apply_context(&env, &key, redactor.clone());
    let hub = context.hub.clone();
    let mut http = http;
    let result = runtime.block_on(apply::apply(
        &plan,
        &mut session,
        &context,
        async |session: &mut Session, mut backends: Vec<crate::mcp::Backend>| {
            let checked = project.check_lock(&plan, session, &backends, lock_mode)?;
            let withheld = apply::pin::withhold(&mut backends, &checked);
            if !withheld.is_empty() {
                let mut names: Vec<&String> = withheld.keys().collect();
                names.sort();
                let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
                let message = format!(
                    "not serving {} tool(s) that differ from outrig.lock (`--locked`): {}",
                    names.len(),
                    names.join(", ")
                );
                crate::output::status!("outrig mcp: {message}");
                events.event(&message);
            }
            let toolbox = Arc::new(
                Toolbox::new(backends, &allow, audit, events.clone(), redactor)
                    .withholding(withheld)
                    .unprefixed(args.unprefixed.clone()),
            );
            let surface = gateway::Surface::new(toolbox.clone(), hub.clone(), events.clone()).await;
            let served = match http.take() {
                None => {
                    let message = format!(
                        "serving {} of {} servers on stdio",
                        surface.summary(),
                        toolbox.backends().len()
                    );
                    crate::output::status!("outrig mcp: {message}");
                    events.event(&message);
                    crate::mcp::stdio::serve_stdio(surface).await
                }
                Some((listener, token)) => {
                    let url = listener.url();
                    let message = format!(
                        "serving {} of {} servers over Streamable HTTP at {url}",
                        surface.summary(),
                        toolbox.backends().len()
                    );
                    crate::output::status!("outrig mcp: {message}");
                    events.event(&message);
                    announce_token(session, &token)?;
                    let access = crate::mcp::http::Access {
                        token: token.value,
                        hosts: args.allow_host.clone(),
                        origins: args.allow_origin.clone(),
                    };
                    listener.serve(surface, access).await;
                    Ok(())
                }
            };
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
            crate::output::status!(
                "outrig mcp: stopped by {}; session {} recorded",
                signal.name(),
                session.record.id
            );
            Ok(exit)
        }
        Ok(()) => {
            crate::output::status!(
                "outrig mcp: the client closed the session; session {} recorded",
                session.record.id
            );
            Ok(ExitStatus::Success)
        }
    }
}

/// The shortest bearer token accepted from `--token-env`.
const MIN_TOKEN: usize = 16;

/// The bearer token of an HTTP gateway, and where it came from.
struct Token {
    value: String,
    /// The variable it was read from; `None` when outrig generated it.
    from: Option<String>,
}

fn http_token(args: &McpArgs, project: &Project) -> Result<Token, Error> {
    match &args.token_env {
        Some(name) => match project.lookup()(name) {
            Some(value) if value.trim().len() >= MIN_TOKEN => Ok(Token {
                value: value.trim().to_string(),
                from: Some(name.clone()),
            }),
            Some(value) if !value.trim().is_empty() => Err(Error::new(format!(
                "--token-env {name}: the token is {} characters, too short to guard the gateway",
                value.trim().chars().count()
            ))
            .hint(format!(
                "use at least {MIN_TOKEN} random characters (e.g. `export {name}=$(openssl rand -hex 32)`), or leave out --token-env and outrig generates one"
            ))),
            _ => Err(Error::new(format!("--token-env {name}: `{name}` is not set"))
                .hint(format!("export {name}=<a long random token>, or leave out --token-env and outrig generates one"))),
        },
        None => Ok(Token {
            value: crate::mcp::http::new_token(),
            from: None,
        }),
    }
}

fn listen_error(error: crate::mcp::http::ListenError) -> Error {
    use crate::mcp::http::ListenError;
    let hint = match &error {
        ListenError::NotLoopback(_) => {
            "add --allow-remote to serve other machines, or listen on 127.0.0.1".to_string()
        }
        ListenError::Bind(..) => "choose another port (0 picks a free one)".to_string(),
    };
    Error::new("outrig mcp cannot serve over HTTP")
        .cause(error.to_string())
        .hint(hint)
}

/// Say once, on stderr, the token a client must send, and keep a generated one in the
/// session directory (mode 0600) for scripts; a token from a variable is not repeated.
fn announce_token(session: &Session, token: &Token) -> Result<(), Error> {
    match &token.from {
        Some(name) => {
            crate::output::status!("outrig mcp: clients authenticate with the token in `{name}`");
        }
        None => {
            let path = session.dir.join("http-token");
            crate::fs::write_atomic(&path, token.value.as_bytes()).map_err(|e| {
                Error::new("cannot store the HTTP bearer token")
                    .cause(format!("{}: {e}", path.display()))
            })?;
            crate::output::status!(
                "outrig mcp: bearer token (shown once; also in {}): {}",
                path.display(),
                token.value
            );
        }
    }
    Ok(())
}

/// The variables podman picks its engine by.
const ENGINE_VARIABLES: [&str; 5] = [
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "OUTRIG_PODMAN",
    "XDG_RUNTIME_DIR",
];

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
    if let Some(server) = &args.unprefixed {
        command_args.extend(["--unprefixed".into(), server.clone()]);
    }
    // The client may start the gateway elsewhere, with another data directory: the
    // sessions go where `outrig ls` here finds them.
    let session_root = crate::session::root(
        args.session_root
            .as_ref()
            .map(|p| env.cwd.join(p))
            .as_deref(),
        config.session_root.as_deref(),
        &env.data_dir(),
    );
    command_args.extend(["--session-root".into(), session_root.display().to_string()]);
    // Variables the servers read through `${VAR}`: the client must pass them on.
    let mut variables: Vec<String> = config
        .images
        .values()
        .flat_map(|i| i.servers.values())
        .flat_map(|s| s.env.values())
        .flat_map(|v| crate::secret::references(v))
        .collect();
    // And the ones that choose the engine, where set: a client that starts the gateway with
    // a trimmed environment would otherwise reach another podman (or, rootless, another
    // runtime directory).
    variables.extend(
        ENGINE_VARIABLES
            .iter()
            .filter(|name| env.var(name).is_some())
            .map(|name| name.to_string()),
    );
    variables.sort();
    variables.dedup();
    let (name, warning) = wiring::entry_name(&config.project, longest_tool_name(config, args));
    if let Some(warning) = warning {
        crate::output::status!("outrig: warning: {warning}");
    }
    let program = program.display().to_string();
    let client = match client {
        McpClient::ClaudeCode => wiring::Client::ClaudeCode,
        McpClient::Codex => wiring::Client::Codex,
        McpClient::Cursor => wiring::Client::Cursor,
        McpClient::Vscode => wiring::Client::Vscode,
    };
    let transport = match args.listen {
        None => wiring::Transport::Stdio {
            program,
            args: command_args,
            variables,
        },
        Some(address) => {
            if address.port() == 0 {
                return Err(Error::new(
                    "--print-config with --listen needs the port the gateway will listen on",
                )
                .hint("name a port, e.g. --listen 127.0.0.1:8808"));
            }
            let token = args
                .token_env
                .clone()
                .unwrap_or_else(|| "OUTRIG_MCP_TOKEN".to_string());
            let mut start = vec![program, shell_words(&command_args)];
            start.push(format!("--listen {address} --token-env {token}"));
            if args.allow_remote {
                start.push("--allow-remote".into());
            }
            crate::output::status!(
                "start the gateway where `{token}` holds a long random token{}: {}",
                if variables.is_empty() {
                    String::new()
                } else {
                    format!(
                        " and the servers' variables are set ({})",
                        variables.join(", ")
                    )
                },
                start.join(" ")
            );
            wiring::Transport::Http {
                url: crate::mcp::http::url(address),
                token,
            }
        }
    };
    let registration = wiring::Registration { name, transport };
    crate::output::stdout(&wiring::snippet(client, &registration));
    crate::output::status!("{}", wiring::placement(client, &registration));
    Ok(ExitStatus::Success)
}

/// Arguments joined for a shell, quoted where needed.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The longest name a tool of the served image(s) is published under, as `outrig.lock`
/// pins them; `None` without a lock.
fn longest_tool_name(config: &crate::config::Config, args: &McpArgs) -> Option<usize> {
    let lock = crate::lock::read(&crate::lock::path(&config.root)).ok()??;
    let image = args.image.clone().or_else(|| {
        let agent = args.agent.as_ref().or(config.default_agent.as_ref())?;
        config.agents.get(agent).map(|a| a.image.clone())
    });
    lock.servers
        .iter()
        .filter_map(|(key, pin)| {
            let (pinned_image, server) = key.split_once('.')?;
            image
                .as_deref()
                .is_none_or(|i| i == pinned_image)
                .then_some((server, pin))
        })
        .flat_map(|(server, pin)| {
            pin.tools.keys().map(move |tool| {
                if args.unprefixed.as_deref() == Some(server) {
                    tool.len()
                } else {
                    crate::mcp::names::published(server, tool).len()
                }
            })
        })
        .max()
}
