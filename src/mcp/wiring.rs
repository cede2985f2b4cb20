//! The snippets that register `outrig mcp` with an MCP client (`outrig mcp
//! --print-config CLIENT`): each client's own file format, for a gateway the client starts
//! on stdio (its command line, and the variables its servers need passed through by name,
//! never their values) or one it reaches over Streamable HTTP (`--listen`: the URL, and
//! the bearer token from a variable).

use std::path::Path;

use super::names;
use crate::config::Config;
use crate::lock::Lock;

/// The clients outrig writes a snippet for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    ClaudeCode,
    Codex,
    Cursor,
    Gemini,
    Vscode,
}

/// How the client reaches the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The client starts `program args...`, passing `variables` on from its environment.
    Stdio {
        program: String,
        args: Vec<String>,
        variables: Vec<String>,
    },
    /// The client connects to `url`, with the bearer token in the variable `token`.
    Http { url: String, token: String },
}

/// One registration: the entry's name and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub transport: Transport,
}

/// What a gateway serves, as its command line selects it.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    pub agent: Option<&'a str>,
    pub image: Option<&'a str>,
    /// `--tools` patterns.
    pub tools: &'a [String],
    /// The server whose tools keep their own names.
    pub unprefixed: Option<&'a str>,
}

/// The variables podman picks its engine by.
const ENGINE_VARIABLES: [&str; 5] = [
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "OUTRIG_PODMAN",
    "XDG_RUNTIME_DIR",
];

/// The arguments that start the gateway of `config` serving `selection`, its sessions
/// under `session_root` (where `outrig ls` finds them, wherever the client starts it).
pub fn gateway_args(config: &Path, selection: &Selection<'_>, session_root: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "mcp".into(),
    ];
    if let Some(agent) = selection.agent {
        args.extend(["--agent".into(), agent.to_string()]);
    }
    if let Some(image) = selection.image {
        args.extend(["--image".into(), image.to_string()]);
    }
    for pattern in selection.tools {
        args.extend(["--tools".into(), pattern.clone()]);
    }
    if let Some(server) = selection.unprefixed {
        args.extend(["--unprefixed".into(), server.to_string()]);
    }
    args.extend(["--session-root".into(), session_root.display().to_string()]);
    args
}

/// The variables the client must pass on, by name: those the servers read through
/// `${VAR}`, and those that choose the engine where set (a client that starts the gateway
/// with a trimmed environment would otherwise reach another podman, or, rootless, another
/// runtime directory).
pub fn variables(config: &Config, is_set: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut variables: Vec<String> = config
        .images
        .values()
        .flat_map(|i| i.servers.values())
        .flat_map(|s| s.env.values())
        .flat_map(|v| crate::secret::references(v))
        .collect();
    variables.extend(
        ENGINE_VARIABLES
            .iter()
            .filter(|name| is_set(name))
            .map(|name| name.to_string()),
    );
    variables.sort();
    variables.dedup();
    variables
}

/// The longest name a tool of the selected image(s) is published under, as `lock` pins
/// them; `None` without a lock.
pub fn longest_tool_name(
    config: &Config,
    lock: Option<&Lock>,
    selection: &Selection<'_>,
) -> Option<usize> {
    let image = selection.image.map(str::to_string).or_else(|| {
        let agent = selection.agent.or(config.default_agent.as_deref())?;
        config.agents.get(agent).map(|a| a.image.clone())
    });
    lock?
        .servers
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
                if selection.unprefixed == Some(server) {
                    tool.len()
                } else {
                    names::published(server, tool).len()
                }
            })
        })
        .max()
}

/// Arguments joined for a shell, quoted where needed.
pub fn shell_words(args: &[String]) -> String {
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

/// Claude Code shows a tool as `mcp__<entry>__<tool>` and accepts 64 characters.
const CLAUDE_PREFIX: usize = "mcp__".len() + "__".len();

/// The entry name for project `project`: `outrig-<project>`, shortened so that every
/// published tool name (the longest is `longest` characters) stays within 64 characters in
/// the form Claude Code shows. `None` for `longest` (no `outrig.lock` to read them from)
/// keeps it to 20 characters. A warning when even a one-character entry is too long.
pub fn entry_name(project: &str, longest: Option<usize>) -> (String, Option<String>) {
    let full = format!("outrig-{project}");
    let room = match longest {
        Some(longest) => names::MAX_LEN.saturating_sub(CLAUDE_PREFIX + longest),
        None => 20,
    };
    if full.len() <= room {
        return (full, None);
    }
    let warning = (room == 0).then(|| {
        format!(
            "a tool name of {} characters is over {} in Claude Code (`mcp__<entry>__<tool>`) whatever the entry is called: shorten the server or tool name",
            longest.unwrap_or_default(),
            names::MAX_LEN
        )
    });
    let short = if room > "outrig-".len() {
        full.chars().take(room).collect::<String>()
    } else {
        project.chars().take(room.max(1)).collect()
    };
    (short.trim_end_matches(['-', '_']).to_string(), warning)
}

/// How Claude Code comes to use a project's `.mcp.json` entry: it asks once.
const CLAUDE_APPROVAL: &str = "Claude Code asks to approve a project's `.mcp.json` servers the first time it starts there; headless `claude -p` cannot ask and leaves them out, so approve it once in an interactive `claude` (or `/mcp`), or add";

/// Where the snippet goes, for the user; `env` reads the variables that move a client's
/// configuration (`CODEX_HOME`).
pub fn placement(
    client: Client,
    registration: &Registration,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let name = &registration.name;
    let approval = format!(
        "{CLAUDE_APPROVAL} `\"enabledMcpjsonServers\": [\"{name}\"]` to `.claude/settings.local.json`"
    );
    match (&registration.transport, client) {
        (
            Transport::Stdio {
                program,
                args,
                variables,
            },
            Client::ClaudeCode,
        ) => {
            let env: String = variables
                .iter()
                .map(|v| format!(" -e '{v}=${{{v}}}'"))
                .collect();
            format!(
                "put this in `.mcp.json` at the project root, or run: claude mcp add --scope project{env} {name} -- {program} {}\n{approval}",
                args.join(" ")
            )
        }
        (Transport::Http { url, token }, Client::ClaudeCode) => format!(
            "put this in `.mcp.json` at the project root, or run: claude mcp add --scope project --transport http {name} {url} --header 'Authorization: Bearer ${{{token}}}'\n{approval}"
        ),
        (_, Client::Codex) => match env("CODEX_HOME").filter(|home| !home.is_empty()) {
            Some(home) => format!(
                "add this to `{}` (Codex reads its configuration from `$CODEX_HOME`)",
                std::path::Path::new(&home).join("config.toml").display()
            ),
            None => "add this to `~/.codex/config.toml`".to_string(),
        },
        (_, Client::Gemini) => "put this in `.gemini/settings.json` at the project root (or `~/.gemini/settings.json`), merging `mcpServers` with what is there; `gemini mcp list` shows it connected".to_string(),
        (_, Client::Cursor) => {
            "put this in `.cursor/mcp.json` (merge `mcpServers` with what is there)".to_string()
        }
        (_, Client::Vscode) => {
            "put this in `.vscode/mcp.json` (merge `servers` with what is there)".to_string()
        }
    }
}

/// A variable reference in `client`'s configuration syntax.
fn reference(client: Client, variable: &str) -> String {
    match client {
        Client::ClaudeCode => format!("${{{variable}}}"),
        Client::Gemini => format!("${variable}"),
        Client::Cursor | Client::Vscode => format!("${{env:{variable}}}"),
        Client::Codex => variable.to_string(),
    }
}

/// The snippet that registers `registration` with `client`.
pub fn snippet(client: Client, registration: &Registration) -> String {
    let name = registration.name.as_str();
    let json = |value: serde_json::Value| {
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    };
    let entry = match &registration.transport {
        Transport::Stdio {
            program,
            args,
            variables,
        } => {
            if client == Client::Codex {
                return codex_stdio(name, program, args, variables);
            }
            let env: serde_json::Map<String, serde_json::Value> = variables
                .iter()
                .map(|v| (v.clone(), serde_json::Value::String(reference(client, v))))
                .collect();
            if client == Client::Gemini {
                serde_json::json!({ "command": program, "args": args, "env": env })
            } else {
                serde_json::json!({
                    "type": "stdio", "command": program, "args": args, "env": env,
                })
            }
        }
        Transport::Http { url, token } => {
            if client == Client::Codex {
                return codex_http(name, url, token);
            }
            let headers = serde_json::json!({ "Authorization": format!("Bearer {}", reference(client, token)) });
            match client {
                // Gemini CLI takes `url` for SSE; Streamable HTTP is `httpUrl`.
                Client::Gemini => serde_json::json!({ "httpUrl": url, "headers": headers }),
                Client::Cursor => serde_json::json!({ "url": url, "headers": headers }),
                _ => serde_json::json!({ "type": "http", "url": url, "headers": headers }),
            }
        }
    };
    let list = if client == Client::Vscode {
        "servers"
    } else {
        "mcpServers"
    };
    json(serde_json::json!({ list: { name: entry } }))
}

fn codex_table(name: &str, table: toml_edit::Table) -> String {
    let mut doc = toml_edit::DocumentMut::new();
    let mut servers = toml_edit::Table::new();
    servers.set_implicit(true);
    servers.insert(name, toml_edit::Item::Table(table));
    doc.insert("mcp_servers", toml_edit::Item::Table(servers));
    doc.to_string()
}

fn codex_stdio(name: &str, program: &str, args: &[String], variables: &[String]) -> String {
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
    codex_table(name, table)
}

fn codex_http(name: &str, url: &str, token: &str) -> String {
    let mut table = toml_edit::Table::new();
    table.insert("url", toml_edit::value(url));
    table.insert("bearer_token_env_var", toml_edit::value(token));
    codex_table(name, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_name_leaves_room_for_every_tool_in_claude_codes_form() {
        assert_eq!(entry_name("demo", Some(20)).0, "outrig-demo");
        // `mcp__` + entry + `__` + a 50-character tool: 7 characters for the entry.
        let (name, warning) = entry_name("a-long-project-name", Some(50));
        assert_eq!(name, "a-long");
        assert!(CLAUDE_PREFIX + name.len() + 50 <= 64 && warning.is_none());
        let (name, warning) = entry_name("quickstart", Some(54));
        assert!(CLAUDE_PREFIX + name.len() + 54 <= 64, "{name}");
        assert!(warning.is_none());
        let (_, warning) = entry_name("x", Some(64));
        assert!(warning.unwrap().contains("64 characters"));
        assert!(entry_name("a-project-whose-name-is-long", None).0.len() <= 20);
    }

    #[test]
    fn http_snippets_name_the_token_variable_never_a_token() {
        let registration = Registration {
            name: "outrig-demo".into(),
            transport: Transport::Http {
                url: "http://127.0.0.1:8808/mcp".into(),
                token: "OUTRIG_MCP_TOKEN".into(),
            },
        };
        let claude = snippet(Client::ClaudeCode, &registration);
        let value: serde_json::Value = serde_json::from_str(&claude).unwrap();
        assert_eq!(value["mcpServers"]["outrig-demo"]["type"], "http");
        assert_eq!(
            value["mcpServers"]["outrig-demo"]["headers"]["Authorization"],
            "Bearer ${OUTRIG_MCP_TOKEN}"
        );
        let vscode: serde_json::Value =
            serde_json::from_str(&snippet(Client::Vscode, &registration)).unwrap();
        assert_eq!(
            vscode["servers"]["outrig-demo"]["headers"]["Authorization"],
            "Bearer ${env:OUTRIG_MCP_TOKEN}"
        );
        let codex = snippet(Client::Codex, &registration);
        assert!(
            codex.contains("bearer_token_env_var = \"OUTRIG_MCP_TOKEN\""),
            "{codex}"
        );
        assert!(
            placement(Client::ClaudeCode, &registration, &|_| None).contains("--transport http")
        );
        let gemini: serde_json::Value =
            serde_json::from_str(&snippet(Client::Gemini, &registration)).unwrap();
        assert_eq!(
            gemini["mcpServers"]["outrig-demo"]["httpUrl"],
            "http://127.0.0.1:8808/mcp"
        );
        assert_eq!(
            gemini["mcpServers"]["outrig-demo"]["headers"]["Authorization"],
            "Bearer $OUTRIG_MCP_TOKEN"
        );
    }

    #[test]
    fn claude_code_gets_every_variable_by_name() {
        let registration = Registration {
            name: "outrig-demo".into(),
            transport: Transport::Stdio {
                program: "/usr/bin/outrig".into(),
                args: vec!["mcp".into()],
                variables: vec!["API_TOKEN".into(), "CONTAINER_HOST".into()],
            },
        };
        let line = placement(Client::ClaudeCode, &registration, &|_| None);
        assert!(
            line.contains("-e 'API_TOKEN=${API_TOKEN}' -e 'CONTAINER_HOST=${CONTAINER_HOST}'"),
            "{line}"
        );
        // The approval headless Claude Code cannot ask for.
        assert!(
            line.contains("\"enabledMcpjsonServers\": [\"outrig-demo\"]"),
            "{line}"
        );
        let gemini: serde_json::Value =
            serde_json::from_str(&snippet(Client::Gemini, &registration)).unwrap();
        let entry = &gemini["mcpServers"]["outrig-demo"];
        assert_eq!(entry["command"], "/usr/bin/outrig");
        assert_eq!(entry["env"]["API_TOKEN"], "$API_TOKEN");
    }

    #[test]
    fn the_codex_hint_follows_codex_home() {
        let registration = Registration {
            name: "outrig-demo".into(),
            transport: Transport::Stdio {
                program: "/usr/bin/outrig".into(),
                args: vec!["mcp".into()],
                variables: vec![],
            },
        };
        assert_eq!(
            placement(Client::Codex, &registration, &|_| None),
            "add this to `~/.codex/config.toml`"
        );
        let home = |name: &str| (name == "CODEX_HOME").then(|| "/srv/codex".to_string());
        assert!(
            placement(Client::Codex, &registration, &home)
                .starts_with("add this to `/srv/codex/config.toml`")
        );
    }
}
