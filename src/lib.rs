//! outrig runs LLM agents whose tools — MCP servers — are isolated in podman containers,
//! driven by a declarative `outrig.toml`.
//!
//! # Module map
//!
//! The layering is `config → plan → apply → podman`; a module only uses those to its right
//! (`session` and `mcp` sit beside `apply`).
//!
//! - [`cli`]: clap types only.
//! - [`commands`]: one thin file per subcommand: load → core → view.
//! - [`config`]: `outrig.toml` — wire types ([`config::model`]), the layered checks
//!   (syntax → schema → semantic) with diagnostics, and resolution into [`config::Config`].
//! - [`schema`]: the JSON Schema, generated from the wire types; `schema/outrig.schema.json`
//!   is its committed copy.
//! - [`plan`]: desired state, build-context hashing, the pure plan function, its views.
//! - [`session`]: the session store (records of applies).
//! - [`mcp`]: the MCP client used to talk to servers inside a sandbox, the tool set they
//!   publish, and the gateway that serves it (`outrig mcp`).
//! - [`agent`]: the LLM agent `apply` runs over those tools.
//! - [`podman`]: commands as plain data, podman's JSON, and the runtime — the only code
//!   that starts processes.
//! - [`error`]: the error users see, and the exit statuses.
//! - [`fs`]: atomic file writes.
//!
//! # Files on disk
//!
//! - `outrig.toml` at the project root (found by walking up from the working directory).
//! - `.outrig/outrig.schema.json`, written by `outrig init` for editor completion.
//! - `$XDG_CACHE_HOME/outrig/contexts/<hash>.json`: build-context manifests (plan).
//! - `<session root>/<id>/session.json`: session records (read by plan), with `logs/`
//!   (server stderr, build logs, `tools.jsonl`, `transcript.jsonl`, `outrig.log`).

pub mod output;

pub mod agent;
pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod environment;
pub mod error;
pub mod fs;
pub mod glob;
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
    }
}
