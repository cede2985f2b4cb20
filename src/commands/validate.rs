//! `outrig validate`: every problem in the config, in one run.

use serde::Serialize;

use crate::cli::{Format, GlobalArgs, ValidateArgs};
use crate::config::diagnostic::DiagnosticRecord;
use crate::config::{self, Checked};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};

/// Version of the `--format json` output; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Report<'a> {
    format_version: u32,
    file: &'a str,
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<DiagnosticRecord<'a>>,
}

pub fn run(
    global: &GlobalArgs,
    args: &ValidateArgs,
    env: Environment,
) -> Result<ExitStatus, Error> {
    let cwd = env.cwd.as_path();
    let path = config::locate(global.config.as_deref(), cwd)?;
    let checked = config::check_file(&path, cwd, &|name| env.var(name).is_some())?;
    let valid = checked.is_valid();
    match args.format {
        Format::Json => print_json(&checked, valid),
        Format::Human => print_human(&checked, valid),
    }
    Ok(if valid {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn print_json(checked: &Checked, valid: bool) {
    let errors = checked.error_count();
    let report = Report {
        format_version: FORMAT_VERSION,
        file: &checked.source.name,
        valid,
        errors,
        warnings: checked.diagnostics.len() - errors,
        diagnostics: checked
            .diagnostics
            .iter()
            .map(|d| d.record(&checked.source))
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&report).expect("a report serialises");
    text.push('\n');
    crate::output::stdout(&text);
}

fn print_human(checked: &Checked, valid: bool) {
    for diagnostic in checked.diagnostics.iter().take(config::SHOWN_DIAGNOSTICS) {
        crate::output::diagnostic(&diagnostic.render(&checked.source, true));
    }
    if let Some(more) = checked
        .diagnostics
        .len()
        .checked_sub(config::SHOWN_DIAGNOSTICS)
        .filter(|n| *n > 0)
    {
        crate::output::status!(
            "... and {more} more diagnostics not shown (`--format json` lists every one)\n"
        );
    }
    let errors = checked.error_count();
    let warnings = checked.diagnostics.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if valid {
        let green = anstyle::AnsiColor::Green.on_default().bold();
        let suffix = if warnings > 0 {
            format!(" ({})", plural(warnings, "warning"))
        } else {
            String::new()
        };
        crate::output::status!("{green}valid{green:#}: `{}`{suffix}", checked.source.name);
    } else {
        let red = anstyle::AnsiColor::Red.on_default().bold();
        let mut summary = plural(errors.max(1), "error");
        if warnings > 0 {
            summary.push_str(&format!(", {}", plural(warnings, "warning")));
        }
        crate::output::status!(
            "{red}error{red:#}: `{}` is invalid: {summary}",
            checked.source.name
        );
    }
}
