//! `outrig validate`: every problem in the config, in one run.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::cli::{Format, GlobalArgs, ValidateArgs};
use crate::config::diagnostic::DiagnosticRecord;
use crate::config::{self, Checked};
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

pub fn run(global: &GlobalArgs, args: &ValidateArgs, cwd: &Path) -> Result<ExitStatus, Error> {
    let path = config::locate(global.config.as_deref(), cwd)?;
    let checked = config::check_file(&path, cwd)?;
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
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn print_human(checked: &Checked, valid: bool) {
    for diagnostic in &checked.diagnostics {
        anstream::eprintln!("{}", diagnostic.render(&checked.source, true));
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
        anstream::eprintln!("{green}valid{green:#}: `{}`{suffix}", checked.source.name);
    } else {
        let red = anstyle::AnsiColor::Red.on_default().bold();
        let mut summary = plural(errors.max(1), "error");
        if warnings > 0 {
            summary.push_str(&format!(", {}", plural(warnings, "warning")));
        }
        anstream::eprintln!(
            "{red}error{red:#}: `{}` is invalid: {summary}",
            checked.source.name
        );
    }
}
