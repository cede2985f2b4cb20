//! `outrig ls`: sessions, newest first. An unreadable record costs only its own row.

use crate::cli::{GlobalArgs, LsArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};
use crate::session;

pub fn run(global: &GlobalArgs, args: &LsArgs, env: Environment) -> Result<ExitStatus, Error> {
    let root = super::session_root(global, &args.root, &env);
    let rows: Vec<serde_json::Value> = session::ids(&root)
        .into_iter()
        .map(|id| match session::read(&root.join(&id)) {
            Ok(record) => serde_json::json!({
                "id": id,
                "project": record.project,
                "command": record.command,
                "agent": record.agent,
                "model": record.model,
                "status": record.status,
                "exit_code": record.exit_code,
                "started_at": record.started_at,
                "ended_at": record.ended_at,
                "duration_s": duration(&record.started_at, record.ended_at.as_deref()),
                "servers": record.servers.len(),
            }),
            Err(error) => serde_json::json!({ "id": id, "error": error }),
        })
        .collect();
    if args.json {
        let mut text = serde_json::to_string_pretty(&rows).expect("serialisable");
        text.push('\n');
        crate::output::stdout(&text);
        return Ok(ExitStatus::Success);
    }
    if rows.is_empty() {
        crate::output::status!("no sessions in `{}`", root.display());
        return Ok(ExitStatus::Success);
    }
    let mut out = format!(
        "{:<21}  {:<7}  {:<24}  {:>8}  {:<24}  {:<11}  {}\n",
        "SESSION", "COMMAND", "STARTED", "DURATION", "PROJECT/AGENT", "STATUS", "EXIT"
    );
    for row in &rows {
        let text = |key: &str| row[key].as_str().unwrap_or("").to_string();
        if let Some(error) = row["error"].as_str() {
            out.push_str(&format!("{:<21}  unreadable: {error}\n", text("id")));
            continue;
        }
        let who = match row["agent"].as_str() {
            Some(agent) => format!("{}/{agent}", text("project")),
            None => text("project"),
        };
        out.push_str(&format!(
            "{:<21}  {:<7}  {:<24}  {:>8}  {:<24}  {:<11}  {}\n",
            text("id"),
            text("command"),
            text("started_at"),
            row["duration_s"]
                .as_f64()
                .map_or("-".into(), |d| format!("{d:.1}s")),
            who,
            row["status"].as_str().unwrap_or("?"),
            row["exit_code"]
                .as_i64()
                .map_or("-".into(), |c| c.to_string()),
        ));
    }
    crate::output::stdout(&out);
    Ok(ExitStatus::Success)
}

fn duration(started: &str, ended: Option<&str>) -> Option<f64> {
    let start: jiff::Timestamp = started.parse().ok()?;
    let end: jiff::Timestamp = ended?.parse().ok()?;
    Some(end.duration_since(start).as_secs_f64())
}
