//! `outrig mcp`: start (or attach to) the sandbox of one image, start its MCP servers, and
//! serve their tools as one MCP server on stdio until the client closes it (or over
//! Streamable HTTP until a signal). Builds nothing unless `--build`: a client must never
//! wait on an image build.
//!
//! On stdio the client is answered from its first message: the handshake at once, from
//! the config and `outrig.lock`, the rest once the servers answer — or, when they cannot
//! be started, with outrig's error, which the client shows (see [`crate::mcp::startup`]).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::apply::{self, Stop};
use crate::cli::{GlobalArgs, McpArgs, McpClient};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::mcp::relay::Hub;
use crate::mcp::startup::{Preview, Startup};
use crate::mcp::toolbox::Toolbox;
use crate::mcp::wiring;
use crate::plan::Plan;
use crate::plan::gateway::Served;
use crate::project::Project;
use crate::project::runner::SessionOptions;
use crate::session::{EndReason, Session};

pub fn run(global: &GlobalArgs, args: &McpArgs, env: Environment) -> Result<ExitStatus, Error> {
    if let Some(client) = args.print_config {
        return print_config(global, args, client, &env);
    }
    let runtime = super::runtime()?;
    let result = match args.listen {
        None => serve_stdio(global, args, env, &runtime),
        Some(_) => serve_http(global, args, env, &runtime),
    };
    // stdin may still be read by a blocking thread; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// What a gateway serves, from the config: the project, the image and its allow-lists.
struct Selection<'a> {
    project: Project,
    image: String,
    allow: Vec<Vec<String>>,
    target: crate::plan::desired::Target<'a>,
}

/// Load the project and choose what to serve (no podman asked yet).
fn select<'a>(
    global: &GlobalArgs,
    args: &'a McpArgs,
    env: Environment,
) -> Result<Selection<'a>, Error> {
    let proxy = env.var("OUTRIG_POD_PROXY");
    let mut project = Project::load(global.config.as_deref(), env, args.session_root.as_deref())?;
    if args.in_pod {
        let outrig = std::env::current_exe().map_err(|e| {
            Error::new("cannot tell where this outrig binary is").cause(e.to_string())
        })?;
        project = project.in_pod(outrig.display().to_string(), proxy)?;
    }
    let served = Served::choose(
        project.config(),
        args.serve.image.as_deref(),
        args.serve.agent.as_deref(),
        &args.serve.tools,
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
    Ok(Selection {
        project,
        image,
        allow,
        target,
    })
}

impl Selection<'_> {
    /// What a client is told before the servers run: the servers the gateway would start,
    /// as `outrig.lock` pins them.
    fn preview(&self, args: &McpArgs) -> Preview {
        let lock = crate::lock::read(&self.project.lock_path()).ok().flatten();
        let servers: Vec<&str> = self.project.config().images[&self.image]
            .servers
            .keys()
            .map(String::as_str)
            .filter(|server| crate::plan::gateway::may_publish(server, &self.allow))
            .collect();
        Preview::from_lock(
            lock.as_ref(),
            &self.image,
            &servers,
            &self.allow,
            args.unprefixed.as_deref(),
        )
    }

    /// The part of the plan this gateway carries out.
    fn plan(&self, args: &McpArgs) -> Result<(Plan, Option<String>), Error> {
        let project = &self.project;
        let attach = match &args.attach {
            Some(wanted) => Some(project.kept_sandbox(wanted, &self.image)?),
            None => None,
        };
        let plan = project.plan(
            self.target,
            attach.as_deref().map(|c| (self.image.as_str(), c)),
        )?;
        let plan = crate::plan::gateway::narrow(&plan, &self.image, &self.allow, args.build)?;
        let lock_mode = lock_mode(args);
        apply::pin::refuse_before_start(&plan, &project.lock_path(), lock_mode)?;
        Ok((plan, attach))
    }
}

fn lock_mode(args: &McpArgs) -> apply::pin::LockMode {
    apply::pin::LockMode::from_flags(args.lock.locked, args.lock.update_lock)
}

/// How long a gateway that could not start waits for a client that has said nothing yet
/// before it exits (a client that spoke is answered until it closes the session).
const SILENT_CLIENT_WAIT: Duration = Duration::from_secs(10);

/// The gateway on stdio: the client is served from its first message, whatever happens
/// next.
fn serve_stdio(
    global: &GlobalArgs,
    args: &McpArgs,
    env: Environment,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let hub = Hub::new();
    let selection = select(global, args, env);
    let preview = match &selection {
        Ok(selection) => selection.preview(args),
        Err(_) => Preview::failed(),
    };
    let startup = Startup::starting(preview, hub.clone());
    let client_gone = CancellationToken::new();
    let served: Arc<Mutex<Option<Result<(), String>>>> = Arc::default();
    runtime.spawn({
        let (startup, client_gone, served) = (startup.clone(), client_gone.clone(), served.clone());
        async move {
            let result = crate::mcp::stdio::serve_stdio(startup).await;
            *served.lock().expect("not poisoned") = Some(result);
            client_gone.cancel();
        }
    });
    let result = selection.and_then(|selection| {
        let (plan, attach) = selection.plan(args)?;
        if client_gone.is_cancelled() {
            crate::output::status!(
                "outrig mcp: the client closed the session before the servers started; nothing was started"
            );
            return Ok(ExitStatus::Success);
        }
        let serve = Serve::Stdio {
            startup: startup.clone(),
            client_gone: client_gone.clone(),
            served,
        };
        run_session(&selection, args, &plan, attach, serve, hub, runtime)
    });
    let Err(error) = result else {
        return result;
    };
    // The client sees the error on every request it makes, until it closes the session.
    startup.fail(&error);
    if !crate::output::stdin_stream().is_terminal() {
        runtime.block_on(startup.until_the_client_leaves(&client_gone, SILENT_CLIENT_WAIT));
    }
    Err(error)
}

/// The gateway over Streamable HTTP: the listener is had before anything starts, and
/// serves once the servers answered.
fn serve_http(
    global: &GlobalArgs,
    args: &McpArgs,
    env: Environment,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let selection = select(global, args, env)?;
    let (plan, attach) = selection.plan(args)?;
    // A listener that cannot be had is refused before anything starts or is recorded.
    let token = http_token(args, &selection.project)?;
    let address = args.listen.expect("serving over HTTP");
    let listener = runtime
        .block_on(crate::mcp::http::Listener::bind(address, args.allow_remote))
        .map_err(listen_error)?;
    let serve = Serve::Http { listener, token };
    run_session(&selection, args, &plan, attach, serve, Hub::new(), runtime)
}

/// How the gateway serves its clients.
enum Serve {
    Stdio {
        startup: Arc<Startup>,
        /// Cancelled when the client closed stdin.
        client_gone: CancellationToken,
        /// How serving the client ended.
        served: Arc<Mutex<Option<Result<(), String>>>>,
    },
    Http {
        listener: crate::mcp::http::Listener,
        token: Token,
    },
}

/// The gateway's session: start the sandbox and its servers, serve, tear down; the end is
/// recorded the moment it comes.
fn run_session(
    selection: &Selection<'_>,
    args: &McpArgs,
    plan: &Plan,
    attach: Option<String>,
    serve: Serve,
    hub: Arc<Hub>,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let project = &selection.project;
    let allow = &selection.allow;
    let lock_mode = lock_mode(args);
    let mut session = project.begin_session(plan, args.session_dir.as_deref(), "mcp")?;
    session.record.attached_to = attach;
    let _ = session.save();
    crate::output::status!(
        "outrig mcp: session {} ({})",
        session.record.id,
        session.dir.display()
    );
    let events = Arc::new(session.open_log("outrig.log")?);
    let audit = session.open_log("tools.jsonl")?;
    let options = SessionOptions {
        secrets: match &serve {
            Serve::Http { token, .. } => vec![token.value.clone()],
            Serve::Stdio { .. } => Vec::new(),
        },
        hub: Some(hub.clone()),
        client_gone: match &serve {
            Serve::Stdio { client_gone, .. } => Some(client_gone.clone()),
            Serve::Http { .. } => None,
        },
        done: EndReason::ClientClosed,
        ..SessionOptions::default()
    };
    let mut serve = Some(serve);
    let result = project.carry_out(
        plan,
        &mut session,
        options,
        runtime,
        async |session: &mut Session, mut backends: Vec<crate::mcp::Backend>, redactor| {
            let checked = project.check_lock(plan, session, &backends, lock_mode)?;
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
                Toolbox::new(backends, allow, audit, events.clone(), redactor)
                    .withholding(withheld)
                    .unprefixed(args.unprefixed.clone())
                    .counting(session.call_counter()),
            );
            let surface =
                crate::mcp::surface::Surface::new(toolbox.clone(), hub.clone(), events.clone())
                    .await;
            let served = match serve.take().expect("served once") {
                Serve::Stdio {
                    startup,
                    client_gone,
                    served,
                } => {
                    let message = format!(
                        "serving {} of {} servers on stdio",
                        surface.summary(),
                        toolbox.backends().len()
                    );
                    // Said before the first held call is answered, so the log reads in order.
                    crate::output::status!("outrig mcp: {message}");
                    events.event(&message);
                    startup.publish(surface).await;
                    client_gone.cancelled().await;
                    served
                        .lock()
                        .expect("not poisoned")
                        .take()
                        .unwrap_or(Ok(()))
                }
                Serve::Http { listener, token } => {
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
    )?;
    events.event("session ended");
    let exit = super::exit_status(&result);
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
        Ok(()) | Err(Stop::ClientLeft) => {
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
        .map_err(|e| Error::new("cannot find outrig's own path").cause(e.to_string()))?
        .display()
        .to_string();
    let selection = wiring::Selection {
        agent: args.serve.agent.as_deref(),
        image: args.serve.image.as_deref(),
        tools: &args.serve.tools,
        unprefixed: args.unprefixed.as_deref(),
    };
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
    let command_args = wiring::gateway_args(&config.path, &selection, &session_root);
    let variables = wiring::variables(config, &|name| env.var(name).is_some());
    let lock = crate::lock::read(&crate::lock::path(&config.root))
        .ok()
        .flatten();
    let longest = wiring::longest_tool_name(config, lock.as_ref(), &selection);
    let (name, warning) = wiring::entry_name(&config.project, longest);
    if let Some(warning) = warning {
        crate::output::status!("outrig: warning: {warning}");
    }
    let client = match client {
        McpClient::ClaudeCode => wiring::Client::ClaudeCode,
        McpClient::Codex => wiring::Client::Codex,
        McpClient::Cursor => wiring::Client::Cursor,
        McpClient::Gemini => wiring::Client::Gemini,
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
            let mut start = vec![program, wiring::shell_words(&command_args)];
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
    crate::output::status!(
        "{}",
        wiring::placement(client, &registration, &|name| env.var(name))
    );
    Ok(ExitStatus::Success)
}
