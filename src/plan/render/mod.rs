//! Views of a plan: the human one (colour through `anstream`, which strips it where colour
//! is off) and JSON. The only place where reasons and security changes become words;
//! [`removal`] does the same for removal plans.

pub mod kube;
pub mod removal;

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::{
    Action, Address, AgentSetting, DeltaKind, Direction, FileChangeKind, LockState, Operation,
    Plan, Reach, Reason, RunSetting, SecurityChange, SecurityDelta, ServerSetting, Step,
    ToolSurface,
};
use crate::podman::command::shell_quote;

/// How much of a plan the human view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detail {
    /// Every step (unchanged ones too) and every server's whole podman command.
    pub verbose: bool,
}

fn style(action: Action) -> Style {
    match action {
        Action::Create => AnsiColor::Green.on_default(),
        Action::Update => AnsiColor::Yellow.on_default(),
        Action::Replace => AnsiColor::Magenta.on_default(),
        Action::Remove => AnsiColor::Red.on_default(),
        Action::NoOp => Style::new().dimmed(),
    }
}

/// The plan for people.
pub fn human(plan: &Plan, detail: Detail) -> String {
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{bold}outrig plan{bold:#} for project `{}`{}",
        plan.project,
        plan.agent
            .as_ref()
            .map(|a| format!(", agent `{a}`"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "compared with {}",
        match &plan.last_applied_session {
            Some(id) => format!("the last applied session {id}"),
            None => "nothing: no session of this project was applied yet".into(),
        }
    );
    let _ = writeln!(out, "{dim}{}{dim:#}", engine_line(plan));
    let _ = writeln!(out);
    let (shown, unchanged): (Vec<&Step>, Vec<&Step>) = plan
        .steps
        .iter()
        .partition(|s| detail.verbose || s.is_change());
    let width = plan
        .steps
        .iter()
        .map(|s| s.address.to_string().len())
        .max()
        .unwrap_or(0);
    let mut servers_shown = false;
    for step in &shown {
        let s = style(step.action);
        let _ = writeln!(
            out,
            "  {s}{:>3} {:<width$}{s:#}  {}",
            step.action.symbol(),
            step.address.to_string(),
            reasons(plan, step)
        );
        match (&step.operation, &step.address) {
            (Some(Operation::StartServer { .. }), Address::Server { image, server })
                if !detail.verbose =>
            {
                servers_shown = true;
                if let Some(spec) = plan.desired.servers.get(&format!("{image}.{server}")) {
                    let command: Vec<String> =
                        spec.command.iter().map(|a| shell_quote(a)).collect();
                    let _ = writeln!(out, "        {dim}{}{dim:#}", command.join(" "));
                    if !spec.env.is_empty() {
                        let names: Vec<String> = spec
                            .env
                            .iter()
                            .map(|(name, value)| match value.secret_template() {
                                Some(template) => format!("{name} (secret {template})"),
                                None => name.clone(),
                            })
                            .collect();
                        let _ = writeln!(out, "        {dim}env: {}{dim:#}", names.join(", "));
                    }
                }
            }
            (
                Some(Operation::RunProxy {
                    commands, network, ..
                }),
                Address::Proxy(image),
            ) => {
                if detail.verbose {
                    for command in [
                        &commands.network,
                        &commands.proxy,
                        &commands.watch,
                        &commands.probe,
                    ] {
                        let _ = writeln!(out, "        {dim}{command}{dim:#}");
                    }
                } else {
                    let destinations: Vec<String> = plan
                        .desired
                        .sandboxes
                        .get(image)
                        .map(|s| {
                            s.network
                                .destinations()
                                .iter()
                                .map(|d| d.to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "        {dim}Squid from `{}` on `{}` (internal: no route out, no DNS) and on podman's network{dim:#}",
                        commands.proxy_image,
                        network.shown()
                    );
                    let _ = writeln!(
                        out,
                        "        {dim}lets CONNECT and plain HTTP through to {} only{dim:#}",
                        destinations.join(", ")
                    );
                    let _ = writeln!(
                        out,
                        "        {dim}then, before any server starts, probes from the sandbox: `{}` reached, `{}` refused, no way around the proxy{dim:#}",
                        commands.listed, commands.unlisted
                    );
                }
            }
            (Some(Operation::RunSandbox { command, watch, .. }), _) => {
                let _ = writeln!(out, "        {dim}{command}{dim:#}");
                let _ = if detail.verbose {
                    writeln!(out, "        {dim}{watch}{dim:#}")
                } else {
                    writeln!(
                        out,
                        "        {dim}then a watcher (`podman exec --interactive`) that removes it when outrig ends{dim:#}"
                    )
                };
            }
            (Some(operation), _) => {
                let _ = writeln!(out, "        {dim}{}{dim:#}", operation.command());
            }
            (None, _) => {}
        }
        if let Some(diff) = &step.diff {
            for line in diff.lines() {
                let line_style = if line.starts_with('+') && !line.starts_with("+++") {
                    AnsiColor::Green.on_default()
                } else if line.starts_with('-') && !line.starts_with("---") {
                    AnsiColor::Red.on_default()
                } else {
                    Style::new()
                };
                let _ = writeln!(out, "        {line_style}{line}{line_style:#}");
            }
        }
    }
    if !unchanged.is_empty() {
        let names: Vec<String> = unchanged.iter().map(|s| s.address.to_string()).collect();
        let _ = writeln!(
            out,
            "  {dim}    {} unchanged: {} (`--verbose` shows them){dim:#}",
            unchanged.len(),
            names.join(", ")
        );
    }
    if servers_shown {
        let _ = writeln!(out);
        let (how, stdio) = match plan.desired.engine.transport() {
            crate::podman::runtime::Transport::PassedPipes => (
                "--detach --preserve-fds=4",
                (
                    "CONTAINER sh -c SHIM sh COMMAND...",
                    "their stdio on pipes outrig passes down",
                ),
            ),
            crate::podman::runtime::Transport::ExecInteractive => (
                "--interactive",
                (
                    "CONTAINER COMMAND...",
                    "their stdio relayed by podman over the engine's API",
                ),
            ),
        };
        let _ = writeln!(
            out,
            "{dim}Servers start with `podman exec {how} --env \
             OUTRIG_SERVER=<image>.<server>@<session> --workdir DIR [--env NAME ...] \
             {}`,{dim:#}",
            stdio.0
        );
        let _ = writeln!(
            out,
            "{dim}{}; `--verbose` shows each whole.{dim:#}",
            stdio.1
        );
    }
    let pinning: Vec<&SecurityDelta> = plan
        .security_deltas
        .iter()
        .filter(|d| d.kind == DeltaKind::Lock)
        .collect();
    out.push_str(&security_section(plan, width));
    lock_section(&mut out, plan, &pinning, width);
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", summary_line(plan));
    if let Some(surface) = &plan.summary.tool_surface {
        let _ = writeln!(out, "{}", surface_line(surface));
    }
    out
}

/// The security section: what the sandbox is granted, or what changes against the last
/// applied session (the lock's differences are said apart); empty when nothing is.
pub fn security_section(plan: &Plan, width: usize) -> String {
    let security: Vec<&SecurityDelta> = plan
        .security_deltas
        .iter()
        .filter(|d| d.kind != DeltaKind::Lock)
        .collect();
    let mut out = String::new();
    if !security.is_empty() {
        let header = AnsiColor::Yellow.on_default().bold();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{header}Security{header:#} ({}):",
            match &plan.last_applied_session {
                Some(_) => "what changes against the last applied session",
                None => "everything this sandbox is granted",
            }
        );
        for delta in &security {
            let (mark, s) = match delta.direction {
                Direction::Widens => ("!", AnsiColor::Yellow.on_default().bold()),
                Direction::Narrows => ("v", AnsiColor::Green.on_default()),
            };
            let _ = writeln!(
                out,
                "  {s}{mark}{s:#} {:<width$}  {}",
                delta.address.to_string(),
                security_change(&delta.change)
            );
        }
    }
    out
}

/// The engine and what follows from it: `on local podman (rootful, cgroups v2): servers
/// talk over pipes passed down; each sandbox ends with outrig, however outrig ends`.
pub fn engine_line(plan: &Plan) -> String {
    let facts = &plan.desired.engine;
    let global_args = plan
        .steps
        .iter()
        .find_map(|s| s.operation.as_ref())
        .map(|o| o.command().global_args.clone())
        .unwrap_or_default();
    let connection = if global_args.is_empty() {
        String::new()
    } else {
        format!(" `{}`", global_args.join(" "))
    };
    let mut line = format!(
        "on {} podman{connection} ({}, cgroups {}): servers talk over {}; each sandbox ends \
         with outrig, however outrig ends",
        if facts.remote { "remote" } else { "local" },
        if facts.rootless {
            "rootless"
        } else {
            "rootful"
        },
        match facts.cgroups {
            crate::podman::engine::Cgroups::V1 => "v1",
            crate::podman::engine::Cgroups::V2 => "v2",
        },
        facts.transport().describe()
    );
    if facts.copies_images() {
        line.push_str(
            "\nnote: this podman stores containers with vfs, which copies the whole image for \
             every sandbox (slow to start and to remove); `driver = \"overlay\"` in \
             storage.conf avoids it (after `podman system reset`)",
        );
    }
    line
}

/// The tool surface in words: `Tools: agent `coder` is offered 14 tools, about 2100
/// tokens of definitions (+1 tool, +120 tokens since the last apply).`
pub fn surface_line(surface: &ToolSurface) -> String {
    let who = match &surface.agent {
        Some(agent) => format!("agent `{agent}` is offered"),
        None => "MCP clients are offered".to_string(),
    };
    let plural = |n: usize| if n == 1 { "tool" } else { "tools" };
    let change = match surface.last_applied {
        None => String::new(),
        Some(last) if last.tools == surface.tools && last.tokens == surface.tokens => {
            " (as last applied)".into()
        }
        Some(last) => {
            let tools = surface.tools as i64 - last.tools as i64;
            let tokens = surface.tokens as i64 - last.tokens as i64;
            format!(
                " ({tools:+} {}, {tokens:+} tokens since the last apply)",
                plural(tools.unsigned_abs() as usize)
            )
        }
    };
    format!(
        "Tools: {who} {} {}, about {} tokens of definitions{change}.",
        surface.tools,
        plural(surface.tools),
        surface.tokens
    )
}

/// What differs from `outrig.lock`, each tool change with its mark and, for a redefined
/// tool, the diff of its definition.
fn lock_section(out: &mut String, plan: &Plan, deltas: &[&SecurityDelta], width: usize) {
    let header = AnsiColor::Yellow.on_default().bold();
    let dim = anstyle::Style::new().dimmed();
    match plan.lock {
        LockState::Absent => {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{dim}No outrig.lock yet: the first apply (or `outrig lock`) pins the images \
                 and tool definitions it runs.{dim:#}"
            );
            return;
        }
        LockState::Matches => return,
        LockState::Drifted => {}
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{header}Drift from outrig.lock{header:#} (accept with `outrig lock` or `apply \
         --update-lock`; `--locked` refuses it):"
    );
    for delta in deltas {
        let (mark, style) = match &delta.change {
            SecurityChange::ToolExposed { .. } | SecurityChange::ServerNotPinned { .. } => {
                ("+", AnsiColor::Yellow.on_default().bold())
            }
            SecurityChange::ToolWithdrawn { .. } => ("-", AnsiColor::Green.on_default()),
            _ => ("~", AnsiColor::Yellow.on_default().bold()),
        };
        let _ = writeln!(
            out,
            "  {style}{mark}{style:#} {:<width$}  {}",
            delta.address.to_string(),
            security_change(&delta.change)
        );
        if let SecurityChange::ToolRedefined { diff, .. } = &delta.change {
            for line in diff.lines() {
                let _ = writeln!(out, "        {dim}{line}{dim:#}");
            }
        }
    }
}

/// Whether a drifted tool would reach a model, in words.
fn reach(reach: &Reach) -> String {
    match reach {
        Reach::Agent {
            agent,
            allowed: true,
        } => format!("agent `{agent}` may call it"),
        Reach::Agent {
            agent,
            allowed: false,
        } => format!("not in agent `{agent}`'s allow-list"),
        Reach::Clients => "served to MCP clients by `outrig mcp`".into(),
    }
}

/// Who root in the sandbox is, in words.
fn user_namespace(mode: &super::desired::UserNamespace) -> String {
    use super::desired::{HostRootWhy, UserNamespace};
    match mode {
        UserNamespace::KeepId => {
            "the sandbox runs as you (rootless podman, `--userns=keep-id`)".into()
        }
        UserNamespace::Owner { uid, gid } => format!(
            "root in the sandbox is uid {uid} (gid {gid}) on the host, the workspace's owner; \
             no other id is mapped"
        ),
        UserNamespace::Auto => {
            "root in the sandbox is an unprivileged host id of its own (`--userns=auto`)".into()
        }
        UserNamespace::HostRoot {
            why: HostRootWhy::WorkspaceOwnedByRoot,
        } => "root in the sandbox is root on the host: the workspace belongs to root and is \
              writable (run outrig as the workspace's owner, or mount it read-only)"
            .into(),
        UserNamespace::HostRoot {
            why: HostRootWhy::NoSubordinateIds,
        } => "root in the sandbox is root on the host: /etc/subuid gives `containers` no range \
              for `--userns=auto` (add `containers:2147483647:2147483648` to /etc/subuid and \
              /etc/subgid)"
            .into(),
    }
}

/// A security change in words.
pub fn security_change(change: &SecurityChange) -> String {
    use super::desired::Network;
    use crate::config::model::Access;
    let access = |a: &Access| match a {
        Access::ReadOnly => "read-only",
        Access::ReadWrite => "read-write",
    };
    match change {
        SecurityChange::WorkspaceGranted {
            host,
            mount,
            access: a,
        } => {
            format!("workspace `{host}` mounted {} at `{mount}`", access(a))
        }
        SecurityChange::WorkspaceChanged {
            old_host,
            old_access,
            host,
            access: a,
        } => format!(
            "workspace `{old_host}` {} → `{host}` {}",
            access(old_access),
            access(a)
        ),
        SecurityChange::Network { old, new } => {
            let name = |network: &Network| match network {
                Network::None => "none".to_string(),
                Network::Default => "default".to_string(),
                Network::Egress { destinations, .. } => format!(
                    "egress ({} destination{})",
                    destinations.len(),
                    if destinations.len() == 1 { "" } else { "s" }
                ),
            };
            let what = match new {
                Network::Default => ": the sandbox can reach any host",
                Network::Egress { .. } => ": only the listed destinations, through the proxy",
                Network::None => ": loopback only",
            };
            format!("network {} → {}{what}", name(old), name(new))
        }
        SecurityChange::EgressAdded { destination } => format!("+ egress {destination}"),
        SecurityChange::EgressRemoved { destination } => format!("- egress {destination}"),
        SecurityChange::MountAdded {
            source,
            target,
            access: a,
        } => format!("new mount `{source}` at `{target}` ({})", access(a)),
        SecurityChange::MountChanged {
            target,
            old_source,
            old_access,
            source,
            access: a,
        } => format!(
            "mount at `{target}`: `{old_source}` {} → `{source}` {}",
            access(old_access),
            access(a)
        ),
        SecurityChange::MountRemoved { target } => format!("mount at `{target}` removed"),
        SecurityChange::CapabilityAdded { capability } => {
            format!("capability {capability} added")
        }
        SecurityChange::CapabilitiesNotAllDropped => {
            "capabilities no longer all dropped: podman's default set applies".into()
        }
        SecurityChange::NewPrivilegesAllowed => {
            "no-new-privileges off: setuid programs can gain privileges".into()
        }
        SecurityChange::RootFilesystemWritable => "root filesystem writable".into(),
        SecurityChange::SecretPassed { template, name } => {
            format!("secret {template} passed to the server as `{name}`")
        }
        SecurityChange::ServerAdded { server } => {
            format!("new server `{server}`: its tools are exposed as `{server}__*`")
        }
        SecurityChange::ServerRemoved => "server removed".into(),
        SecurityChange::EveryToolAllowed => "every tool of the image allowed".into(),
        SecurityChange::ToolsAllowed { patterns } => {
            format!("tools allowed: {}", patterns.join(", "))
        }
        SecurityChange::AllowListRemoved => {
            "allow-list removed: every tool of the image allowed".into()
        }
        SecurityChange::ToolsNewlyAllowed { patterns } => {
            format!("tools newly allowed: {}", patterns.join(", "))
        }
        SecurityChange::ApiKeySent { key, url } => format!("API key {key} sent to `{url}`"),
        SecurityChange::ApiKeyMoved { key, url, old_url } => {
            format!("API key {key} now sent to `{url}` (was `{old_url}`)")
        }
        SecurityChange::UserNamespace { mode } => user_namespace(mode),
        SecurityChange::LimitsNotEnforced {
            pids_limit,
            memory,
            why,
        } => format!(
            "pids-limit ({pids_limit}) and memory ({memory}) are not enforced by this podman ({})",
            match why {
                super::LimitsWhy::RootlessCgroupsV1 => "cgroups v1, rootless",
                super::LimitsWhy::NoControllers => "its cgroup lacks the pids or memory controller",
            }
        ),
        SecurityChange::SecretsShared {
            server,
            secrets,
            others,
        } => format!(
            "`{server}` holds secrets ({}) and shares its sandbox with {}: each can read the \
             other's environment and signal it (give it an image of its own to separate them)",
            secrets.join(", "),
            others
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        SecurityChange::ImageUnpinned { pinned, now } => {
            format!("image is not the pinned one: `{pinned}` → `{now}`")
        }
        SecurityChange::ServerNotPinned { server } => {
            format!("server `{server}` is not in outrig.lock: its tools are pinned on first use")
        }
        SecurityChange::ToolExposed {
            tool,
            reach: r,
            session,
        } => format!(
            "tool {tool} newly exposed ({}; seen by session {session})",
            reach(r)
        ),
        SecurityChange::ToolWithdrawn {
            tool,
            reach: r,
            session,
        } => format!(
            "tool {tool} removed ({}; seen by session {session})",
            match r {
                Reach::Agent {
                    agent,
                    allowed: true,
                } => format!("agent `{agent}` could call it"),
                Reach::Agent {
                    agent,
                    allowed: false,
                } => {
                    format!("it was not in agent `{agent}`'s allow-list")
                }
                Reach::Clients => "it was served to MCP clients".into(),
            }
        ),
        SecurityChange::ToolRedefined {
            tool,
            fields,
            reach: r,
            session,
            ..
        } => format!(
            "tool {tool} {} changed ({}; seen by session {session})",
            if fields.is_empty() {
                "definition".to_string()
            } else {
                fields.join(", ")
            },
            reach(r)
        ),
    }
}

/// A step's reasons in words.
pub fn reasons(plan: &Plan, step: &Step) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run_settings: Vec<&str> = Vec::new();
    let mut server_settings: Vec<&str> = Vec::new();
    let mut agent_settings: Vec<&str> = Vec::new();
    let noun = match step.address {
        Address::Sandbox(_) => "sandbox",
        Address::Server { .. } => "server",
        Address::Agent(_) => "agent",
        _ => "resource",
    };
    for reason in &step.reasons {
        match reason {
            Reason::ImageMissing => parts.push("image missing: build it".into()),
            Reason::DiffersFromLock { pinned, now } => parts.push(format!(
                "not the image outrig.lock pins: `{pinned}` → `{now}`"
            )),
            Reason::ImageCurrent { reference } => parts.push(format!("up to date (`{reference}`)")),
            Reason::ImagePresent { reference } => {
                parts.push(format!("`{reference}` exists locally"))
            }
            Reason::ImageNotLocal => parts.push("image missing locally: pull it".into()),
            Reason::PullAlways => {
                parts.push("`pull = \"always\"`: check the registry for a newer image".into())
            }
            Reason::Replaces { reference } => parts.push(format!("replaces `{reference}`")),
            Reason::ContainerfileChanged => parts.push("Containerfile changed".into()),
            Reason::ContextChanged { changes, more } => {
                if changes.is_empty() {
                    parts.push("build context changed".into());
                } else {
                    let files: Vec<String> = changes
                        .iter()
                        .map(|c| match &c.change {
                            FileChangeKind::Modified => format!("`{}`", c.path),
                            FileChangeKind::Added => format!("`{}` (added)", c.path),
                            FileChangeKind::Removed => format!("`{}` (removed)", c.path),
                            FileChangeKind::ModeChanged { old, new } => {
                                format!("`{}` (mode only: {old} → {new})", c.path)
                            }
                        })
                        .collect();
                    let more = match more {
                        0 => String::new(),
                        n => format!(" and {n} more"),
                    };
                    parts.push(format!("build context changed: {}{more}", files.join(", ")));
                }
            }
            Reason::BuildArgumentsChanged => parts.push("build arguments changed".into()),
            Reason::BuildInputsChanged => parts.push("inputs changed".into()),
            Reason::NothingApplied => parts.push(
                match step.address {
                    Address::Agent(_) => "runs in the session",
                    _ => "starts for the session",
                }
                .into(),
            ),
            Reason::Unchanged => parts.push(
                match step.address {
                    Address::Agent(_) => "runs in the session; unchanged",
                    _ => "starts for the session; unchanged",
                }
                .into(),
            ),
            Reason::New => parts.push(format!("new {noun}")),
            Reason::ImageDiffers { last, planned } => parts.push(format!(
                "image differs from the last applied session's: `{last}` → `{planned}`"
            )),
            Reason::RunSettingChanged { setting } => run_settings.push(match setting {
                RunSetting::Network => "network",
                RunSetting::Egress => "egress",
                RunSetting::Workspace => "workspace",
                RunSetting::Mounts => "mounts",
                RunSetting::Capabilities => "capabilities",
                RunSetting::SecurityOptions => "security options",
                RunSetting::Limits => "limits",
                RunSetting::UserNamespace => "user namespace",
            }),
            Reason::ServerSettingChanged { setting } => server_settings.push(match setting {
                ServerSetting::Command => "command",
                ServerSetting::Environment => "environment",
                ServerSetting::WorkingDirectory => "working directory",
                ServerSetting::Limits => "limits",
            }),
            Reason::SecretValueChanged { name, .. } => parts.push(format!("{name}: value changed")),
            Reason::AgentSettingChanged { setting } => agent_settings.push(match setting {
                AgentSetting::Model => "model",
                AgentSetting::Provider => "provider",
                AgentSetting::ToolAllowList => "tool allow-list",
                AgentSetting::Image => "image",
                AgentSetting::Limits => "limits",
            }),
            Reason::OrphanNetwork { session } => parts.push(format!(
                "egress network left by session {session}, which is gone"
            )),
            Reason::Orphan { session, state } => parts.push(format!(
                "orphaned container from session {session} ({state})"
            )),
            Reason::LiveSession { session, state } => parts.push(format!(
                "belongs to session {session}, which is running or kept ({state})"
            )),
            Reason::Attached { container } => {
                parts.push(format!("in the kept sandbox `{container}`"))
            }
        }
    }
    if !run_settings.is_empty() {
        parts.push(format!("run settings changed: {}", run_settings.join(", ")));
    }
    if !server_settings.is_empty() {
        parts.push(format!("{} changed", server_settings.join(", ")));
    }
    if !agent_settings.is_empty() {
        parts.push(format!("{} changed", agent_settings.join(", ")));
    }
    let mut text = parts.join("; ");
    if let Address::Agent(name) = &step.address
        && let Some(agent) = plan.desired.agents.get(name)
    {
        let _ = write!(
            text,
            " (model `{}` at `{}`)",
            agent.identifier, agent.base_url
        );
    }
    text
}

/// `Plan: 1 to build, 1 to start, 2 servers, 1 to remove.` or `No changes. ...`
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let runs = format!(
        "{} to start, {}",
        s.to_start,
        plural(s.servers, "server", "servers")
    );
    if s.has_changes {
        let changed = match (&plan.last_applied_session, s.changed) {
            (None, _) => " (nothing applied yet)".to_string(),
            (Some(_), 0) => String::new(),
            (Some(_), n) => format!(" ({n} changed since the last apply)"),
        };
        format!(
            "Plan: {} to build, {runs}, {} to remove{changed}.",
            s.to_build, s.to_remove
        )
    } else {
        format!(
            "No changes. Images are current; each session starts {} with {}, as last applied.",
            plural(s.to_start, "sandbox", "sandboxes"),
            plural(s.servers, "server", "servers")
        )
    }
}

/// The plan as versioned JSON.
pub fn json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).expect("a plan serialises");
    text.push('\n');
    text
}
