//! The snippets that register `outrig mcp` with an MCP client (`outrig mcp
//! --print-config CLIENT`): each client's own file format, for a gateway the client starts
//! on stdio (its command line, and the variables its servers need passed through by name,
//! never their values) or one it reaches over Streamable HTTP (`--listen`: the URL, and
//! the bearer token from a variable).

use super::names;

/// The clients outrig writes a snippet for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    ClaudeCode,
    Codex,
    Cursor,
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

/// Where the snippet goes, for the user.
pub fn placement(client: Client, registration: &Registration) -> String {
    let name = &registration.name;
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
                "put this in `.mcp.json` at the project root, or run: claude mcp add --scope project{env} {name} -- {program} {}",
                args.join(" ")
            )
        }
        (Transport::Http { url, token }, Client::ClaudeCode) => format!(
            "put this in `.mcp.json` at the project root, or run: claude mcp add --scope project --transport http {name} {url} --header 'Authorization: Bearer ${{{token}}}'"
        ),
        (_, Client::Codex) => "add this to `~/.codex/config.toml`".to_string(),
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
            serde_json::json!({
                "type": "stdio", "command": program, "args": args, "env": env,
            })
        }
        Transport::Http { url, token } => {
            if client == Client::Codex {
                return codex_http(name, url, token);
            }
            let mut entry = serde_json::json!({
                "url": url,
                "headers": { "Authorization": format!("Bearer {}", reference(client, token)) },
            });
            if client != Client::Cursor {
                entry["type"] = "http".into();
            }
            entry
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
        assert!(placement(Client::ClaudeCode, &registration).contains("--transport http"));
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
        let line = placement(Client::ClaudeCode, &registration);
        assert!(
            line.contains("-e 'API_TOKEN=${API_TOKEN}' -e 'CONTAINER_HOST=${CONTAINER_HOST}'"),
            "{line}"
        );
    }
}
