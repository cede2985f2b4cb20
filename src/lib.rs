//! outrig runs LLM agents whose tools — MCP servers — are isolated in podman containers,
//! driven by a declarative `outrig.toml`.
//!
//! # Module map
//!
//! Data flows `config → plan → apply → podman`: the config is resolved into a desired
//! state, the plan compares it with podman's state and the last session and says exactly
//! what will run, apply runs it through podman. Imports go down the layers below, never
//! up (a test in this file holds the code to it):
//!
//! | layer | modules | what they own |
//! |---|---|---|
//! | CLI | [`cli`], [`commands`], [`project`] | clap types; one thin file per subcommand (load → core → view); [`project::Project`], what every command loads |
//! | agent | [`agent`] | the LLM agent `apply` runs over the sandboxed tools |
//! | apply | [`apply`] | carrying out a plan's operations, recording the session, teardown |
//! | MCP | [`mcp`] | the client for servers in a sandbox, the published tool set, the gateway (`outrig mcp`) |
//! | plan | [`plan`] | desired state, build-context hashing, the pure plan function, the saved-plan comparison, the views |
//! | config | [`config`], [`schema`], [`lock`] | `outrig.toml`: wire types, layered checks with diagnostics, resolution; its JSON Schema; `outrig.lock`, the pinned images and tool definitions, and drift from it |
//! | sessions | [`session`] | the session store (records, logs); knows records, not plans |
//! | podman | [`podman`] | commands as plain data, podman's JSON, the [`podman::Runtime`] — the only code that starts processes |
//! | leaves | [`secret`], [`environment`], [`output`], [`error`], [`fs`], [`digest`], [`glob`], [`egress`] | `${VAR}`, fingerprints and redaction; the process environment (read once); printing; the user-facing error; atomic and bounded file I/O; content hashes; allow-list globs; egress destinations, the proxy's configuration, probes and log |
//!
//! `clippy.toml` guards three rules: only [`podman::runtime`] starts processes, only
//! [`environment`] reads environment variables, only [`output`] prints.
//!
//! # Files on disk
//!
//! - `outrig.toml` at the project root (found by walking up from the working directory).
//! - `.outrig/outrig.schema.json`, written by `outrig init` for editor completion.
//! - `outrig.lock` beside `outrig.toml`: pinned images and tool definitions (committed).
//! - `$XDG_CACHE_HOME/outrig/contexts/<hash>.json`: build-context manifests (plan).
//! - `$XDG_DATA_HOME/outrig/fingerprint.key` (0600): the key secret fingerprints are made
//!   with.
//! - `<session root>/<id>/session.json`: session records (read by plan), with `logs/`
//!   (server stderr, build logs, `tools.jsonl`, `transcript.jsonl`, `outrig.log`).

pub mod output;

pub mod agent;
pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod egress;
pub mod environment;
pub mod error;
pub mod fs;
pub mod glob;
pub mod lock;
pub mod mcp;
pub mod plan;
pub mod podman;
pub mod project;
pub mod schema;
pub mod secret;
pub mod session;

use clap::Parser;

use cli::{Cli, ColorChoice, Command};
use environment::Environment;
use error::{Error, ExitStatus};

/// Parse arguments, run the command, and return the process exit status. Errors are
/// rendered to stderr here.
pub fn run() -> ExitStatus {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            };
        }
    };
    let choice = match cli.global.color {
        ColorChoice::Auto => anstream::ColorChoice::Auto,
        ColorChoice::Always => anstream::ColorChoice::Always,
        ColorChoice::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
    match dispatch(&cli) {
        Ok(status) => status,
        Err(error) => {
            output::stderr(&error.render());
            ExitStatus::Failure
        }
    }
}

fn dispatch(cli: &Cli) -> Result<ExitStatus, Error> {
    let env = Environment::from_process()
        .map_err(|e| Error::new("cannot read the current directory").cause(e.to_string()))?;
    let global = &cli.global;
    match &cli.command {
        Command::Init(args) => commands::init::run(args, env),
        Command::Validate(args) => commands::validate::run(global, args, env),
        Command::Schema(args) => commands::schema::run(args),
        Command::Plan(args) => commands::plan::run(global, args, env),
        Command::Show(args) => commands::show::run(global, args, env),
        Command::Apply(args) => commands::apply::run(global, args, env),
        Command::Mcp(args) => commands::mcp::run(global, args, env),
        Command::Ls(args) => commands::ls::run(global, args, env),
        Command::Logs(args) => commands::logs::run(global, args, env),
        Command::Discard(args) => commands::discard::run(global, args, env),
        Command::Destroy(args) => commands::destroy::run(global, args, env),
        Command::Clean(args) => commands::clean::run(global, args, env),
        Command::Lock(args) => commands::lock::run(global, args, env),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::man::run(args, env),
    }
}

#[cfg(test)]
mod layering {
    //! The layers of the module map, held against the code: every `crate::<module>` a
    //! file names must be in its own layer or below.

    /// Bottom first.
    const LAYERS: &[&[&str]] = &[
        &[
            "secret",
            "environment",
            "output",
            "error",
            "fs",
            "digest",
            "glob",
            "egress",
        ],
        &["podman"],
        &["session"],
        &["config", "schema", "lock"],
        &["plan"],
        &["mcp"],
        &["apply"],
        &["agent"],
        &["cli", "commands", "project"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn imports_go_down_the_layers() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        files(&src, &mut paths);
        let mut wrong = Vec::new();
        for path in paths {
            let relative = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let module = relative.split(['/', '.']).next().unwrap().to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let own = layer(&module).unwrap_or_else(|| panic!("`{module}` is in no layer"));
            let text = std::fs::read_to_string(&path).unwrap();
            // Tests may reach anywhere; the code above them may not.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (index, _) in code.match_indices("crate::") {
                let name: String = code[index + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(used) = layer(&name)
                    && used > own
                {
                    wrong.push(format!("{relative} uses crate::{name}"));
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(
            wrong.is_empty(),
            "imports against the layering:\n{}",
            wrong.join("\n")
        );
    }
}
