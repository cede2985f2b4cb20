//! outrig runs LLM agents whose tools — MCP servers — are isolated in podman containers,
//! driven by a declarative `outrig.toml`.
//!
//! # Module map
//!
//! Data flows `config → plan → apply → podman`: the config is resolved into a desired
//! state, the plan compares it with podman's state and the last session and says exactly
//! what will run, apply runs it through podman. Imports go down the layers below, never
//! up, no files import each other in a circle, and no command speaks podman itself (tests
//! in this file hold the code to all three):
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
        Command::Export(command) => commands::export::run(global, command, env),
        Command::ExecServer(args) => commands::exec_server::run(args, env),
    }
}

#[cfg(test)]
mod layering {
    //! The layers of the module map, held against the code: every `crate::<module>` a
    //! file names must be in its own layer or below; and no files take names from each
    //! other in a circle (a module with its own submodules counts as one).

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

    /// Every source file under `src/`: its path from there, and its text.
    fn sources() -> Vec<(String, String)> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        files(&src, &mut paths);
        paths
            .into_iter()
            .map(|path| {
                let relative = path.strip_prefix(&src).unwrap().to_string_lossy();
                (
                    relative.into_owned(),
                    std::fs::read_to_string(&path).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn imports_go_down_the_layers() {
        let mut wrong = Vec::new();
        for (relative, text) in sources() {
            let module = relative.split(['/', '.']).next().unwrap().to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let own = layer(&module).unwrap_or_else(|| panic!("`{module}` is in no layer"));
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

    /// Commands stay thin: they load, call the core and render; podman is spoken by the
    /// core (plans, apply, the project), never by a command.
    #[test]
    fn commands_never_speak_podman() {
        let mut wrong: Vec<String> = sources()
            .into_iter()
            .filter(|(relative, _)| relative.starts_with("commands/"))
            .filter(|(_, text)| {
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                code.contains("crate::podman")
            })
            .map(|(relative, _)| relative)
            .collect();
        wrong.sort();
        assert!(
            wrong.is_empty(),
            "commands that use crate::podman:\n{}",
            wrong.join("\n")
        );
    }

    /// A file's module path: `plan/diff.rs` → `plan::diff`, `mcp/mod.rs` → `mcp`.
    fn module_of(relative: &str) -> Vec<String> {
        let mut parts: Vec<String> = relative
            .trim_end_matches(".rs")
            .split('/')
            .map(String::from)
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        parts
    }

    /// The paths a piece of code names from `crate::` or `super::`, as module paths from
    /// the crate's root (`self_module` is the module the code is in); a `{...}` group gives
    /// one path for each of its members.
    fn named_paths(code: &str, self_module: &[String]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(at) = rest.find(['c', 's']) {
                let tail = &rest[at..];
                let boundary = at == 0
                    || !rest[..at]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                let (mut base, mut path_text) = if boundary && tail.starts_with("crate::") {
                    (Vec::new(), &tail[7..])
                } else if boundary && tail.starts_with("super::") {
                    let mut base = self_module.to_vec();
                    let mut text = tail;
                    while let Some(next) = text.strip_prefix("super::") {
                        base.pop();
                        text = next;
                    }
                    (base, text)
                } else {
                    rest = &rest[at + 1..];
                    continue;
                };
                let mut words = Vec::new();
                loop {
                    let word: String = path_text
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if word.is_empty() {
                        break;
                    }
                    path_text = &path_text[word.len()..];
                    words.push(word);
                    match path_text.strip_prefix("::") {
                        Some(next) => path_text = next,
                        None => break,
                    }
                }
                base.extend(words);
                if let Some(group) = path_text.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for member in group[..end].split(',') {
                        let mut path = base.clone();
                        path.extend(
                            member
                                .trim()
                                .split("::")
                                .map(|w| w.trim().to_string())
                                .filter(|w| !w.is_empty() && w != "self"),
                        );
                        out.push(path);
                    }
                } else {
                    out.push(std::mem::take(&mut base));
                }
                rest = path_text;
            }
        }
        out
    }

    #[test]
    fn no_files_import_each_other_in_a_circle() {
        let texts: Vec<(String, String)> = sources()
            .into_iter()
            .filter(|(relative, _)| {
                !["lib.rs", "main.rs"].contains(&relative.as_str())
                    && !relative.ends_with("tests.rs")
            })
            .collect();
        let modules: std::collections::BTreeMap<Vec<String>, String> = texts
            .iter()
            .map(|(relative, _)| (module_of(relative), relative.clone()))
            .collect();
        // Which files each file takes names from; a module's own parent or children
        // (`super::` from a submodule, a `mod` it declares) are one piece, not a circle.
        let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for (relative, text) in &texts {
            let own = module_of(relative);
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for path in named_paths(code, &own) {
                let Some(target) = (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
                else {
                    continue;
                };
                let theirs = module_of(target);
                if theirs.starts_with(&own) || own.starts_with(&theirs) {
                    continue;
                }
                edges
                    .entry(relative.clone())
                    .or_default()
                    .insert(target.clone());
            }
        }
        // A depth-first walk finds any circle.
        fn visit(
            file: &str,
            edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
            trail: &mut Vec<String>,
            done: &mut std::collections::BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = trail.iter().position(|f| f == file) {
                let mut circle = trail[at..].to_vec();
                circle.push(file.to_string());
                return Some(circle);
            }
            if !done.insert(file.to_string()) {
                return None;
            }
            trail.push(file.to_string());
            for next in edges.get(file).into_iter().flatten() {
                if let Some(circle) = visit(next, edges, trail, done) {
                    return Some(circle);
                }
            }
            trail.pop();
            None
        }
        let mut done = Default::default();
        for file in edges.keys() {
            if let Some(circle) = visit(file, &edges, &mut Vec::new(), &mut done) {
                panic!(
                    "files that import each other in a circle: {}",
                    circle.join(" → ")
                );
            }
        }
        // The walk sees imports at all: the plan takes names from podman.
        assert!(
            edges["plan/diff.rs"]
                .iter()
                .any(|f| f.starts_with("podman/"))
        );
    }
}
