//! `outrig completions SHELL`: a completion script for the shell, on stdout (clap_complete,
//! from the same command-line types the parser uses, so it never drifts).

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::error::{Error, ExitStatus};

pub fn run(args: &CompletionsArgs) -> Result<ExitStatus, Error> {
    crate::output::stdout(&script(args.shell));
    Ok(ExitStatus::Success)
}

/// The completion script for `shell`.
pub fn script(shell: Shell) -> String {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(generator, &mut command, "outrig", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
