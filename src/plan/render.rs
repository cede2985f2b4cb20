//! Views of a plan: the human one (colour through `anstream`, which strips it where
//! colour is off) and JSON.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::{Action, Direction, Plan};

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
pub fn human(plan: &Plan) -> String {
    let bold = Style::new().bold();
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
    let _ = writeln!(out);
    let width = plan
        .steps
        .iter()
        .map(|s| s.address.len())
        .max()
        .unwrap_or(0);
    for step in &plan.steps {
        let s = style(step.action);
        let _ = writeln!(
            out,
            "  {s}{:>3} {:<width$}{s:#}  {}",
            step.action.symbol(),
            step.address,
            step.reason
        );
        if let Some(command) = &step.command {
            let dim = Style::new().dimmed();
            let _ = writeln!(out, "        {dim}{command}{dim:#}");
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
    if !plan.security_deltas.is_empty() {
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
        for delta in &plan.security_deltas {
            let (mark, s) = match delta.direction {
                Direction::Widens => ("!", AnsiColor::Yellow.on_default().bold()),
                Direction::Narrows => ("v", AnsiColor::Green.on_default()),
            };
            let _ = writeln!(
                out,
                "  {s}{mark}{s:#} {:<width$}  {}",
                delta.address, delta.message
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", summary_line(plan));
    out
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
