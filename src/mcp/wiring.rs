//! The snippets that register `outrig mcp` with an MCP client (`outrig mcp
//! --print-config CLIENT`): each client's own file format, the gateway's command line,
//! and the variables its servers need passed through by name (never their values).

/// The clients outrig writes a snippet for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    ClaudeCode,
    Codex,
    Cursor,
    Vscode,
}

/// Where the snippet goes, for the user.
pub fn placement(client: Client, name: &str, program: &str, args: &[String]) -> String {
    match client {
        Client::ClaudeCode => format!(
            "put this in `.mcp.json` at the project root, or run: claude mcp add {name} -- {program} {}",
            args.join(" ")
        ),
        Client::Codex => "add this to `~/.codex/config.toml`".to_string(),
        Client::Cursor => {
            "put this in `.cursor/mcp.json` (merge `mcpServers` with what is there)".to_string()
        }
        Client::Vscode => {
            "put this in `.vscode/mcp.json` (merge `servers` with what is there)".to_string()
        }
    }
}

/// The snippet that makes `client` start `program args...` as the server `name`, passing
/// `variables` through from its own environment.
pub fn snippet(
    client: Client,
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
        Client::ClaudeCode => json(serde_json::json!({
            "mcpServers": { name: {
                "type": "stdio", "command": program, "args": args,
                "env": env(&|v| format!("${{{v}}}")),
            }}
        })),
        Client::Cursor => json(serde_json::json!({
            "mcpServers": { name: {
                "type": "stdio", "command": program, "args": args,
                "env": env(&|v| format!("${{env:{v}}}")),
            }}
        })),
        Client::Vscode => json(serde_json::json!({
            "servers": { name: {
                "type": "stdio", "command": program, "args": args,
                "env": env(&|v| format!("${{env:{v}}}")),
            }}
        })),
        Client::Codex => {
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
