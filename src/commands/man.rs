//! `outrig man [--dir DIR]`: the manual page, rendered by clap_mangen from the command-line
//! types, so it says what `--help` says.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::environment::Environment;
use crate::error::{Error, ExitStatus};

pub fn run(args: &ManArgs, env: Environment) -> Result<ExitStatus, Error> {
    let Some(dir) = &args.dir else {
        crate::output::stdout(&page(&Cli::command()));
        return Ok(ExitStatus::Success);
    };
    let dir = env.cwd.join(dir);
    let written = write_pages(&dir)?;
    crate::output::status!("wrote {written} manual pages into `{}`", dir.display());
    Ok(ExitStatus::Success)
}

/// One command's page, in roff.
fn page(command: &clap::Command) -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut out)
        .expect("rendering into memory does not fail");
    String::from_utf8_lossy(&out).into_owned()
}

/// `outrig.1` and `outrig-<command>.1` for every command; how many were written.
fn write_pages(dir: &Path) -> Result<usize, Error> {
    let mut command = Cli::command();
    command.build();
    let mut pages = vec![("outrig.1".to_string(), page(&command))];
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("outrig-{}", sub.get_name());
        let sub = sub.clone().name(name.clone());
        pages.push((format!("{name}.1"), page(&sub)));
    }
    for (file, text) in &pages {
        let path = dir.join(file);
        crate::fs::write_atomic_shared(&path, text.as_bytes()).map_err(|e| {
            Error::new(format!("cannot write `{}`", path.display())).cause(e.to_string())
        })?;
    }
    Ok(pages.len())
}
