//! `outrig.toml`: finding it, reading it, checking it in layers, resolving it.
//!
//! The layers run in order and report everything they find: TOML syntax
//! ([`source`]) → JSON Schema ([`schema_check`], against [`crate::schema`]) → semantic
//! rules ([`check`]). A schema error cuts the offending part away so the semantic layer can
//! still look at the rest: five mistakes give five diagnostics in one run. A valid file is
//! then [`resolve`]d into a [`Config`].

pub mod check;
pub mod diagnostic;
pub mod model;
pub mod resolve;
pub mod schema_check;
pub mod source;
pub mod suggest;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use diagnostic::{Diagnostic, Severity, SourceFile};
pub use model::ConfigFile;
pub use resolve::Config;

use crate::error::Error;

/// The name outrig looks for.
pub const FILE_NAME: &str = "outrig.toml";

/// Largest config file outrig reads. Real configs are a few kilobytes; the limit keeps a
/// wrong `--config` (a log file, a disk image, `/dev/zero`) from being read into memory.
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// How many diagnostics are rendered in full; the rest are counted.
pub const SHOWN_DIAGNOSTICS: usize = 50;

/// How many times schema errors are cut away before giving up on the semantic layer.
const PRUNE_ROUNDS: usize = 8;

/// The result of checking a file: all diagnostics, and the typed file when it was
/// well-formed enough to read.
#[derive(Debug)]
pub struct Checked {
    pub source: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
    pub file: Option<ConfigFile>,
}

impl Checked {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_valid(&self) -> bool {
        self.file.is_some() && self.error_count() == 0
    }
}

/// A config that passed every check, resolved.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub source: SourceFile,
    /// Warnings found while checking.
    pub warnings: Vec<Diagnostic>,
}

/// Walk up from `start` to the first directory holding `outrig.toml`.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
}

/// The config file to use: `--config`, else the one found above `cwd`.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, Error> {
    match explicit {
        Some(path) => {
            let path = cwd.join(path);
            if path.is_dir() {
                let inside = path.join(FILE_NAME);
                if inside.is_file() {
                    return Ok(inside);
                }
            }
            Ok(path)
        }
        None => find(cwd).ok_or_else(|| {
            Error::new(format!(
                "no `{FILE_NAME}` in `{}` or any parent directory",
                cwd.display()
            ))
            .hint("run `outrig init` to create one, or pass `--config PATH`")
        }),
    }
}

/// The name a path is shown as: relative to `cwd` when it is inside it.
pub fn display_name(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Read a config file. Failing to read it at all is an [`Error`]; text that is not UTF-8
/// is a diagnostic (with a place), returned as a [`Checked`] with no file.
pub fn read(path: &Path, name: &str) -> Result<Result<SourceFile, Checked>, Error> {
    let cannot_read = |cause: std::io::Error| {
        Error::new(format!("cannot read `{name}`"))
            .cause(cause.to_string())
            .hint(if cause.kind() == std::io::ErrorKind::NotFound {
                "check the path, or run `outrig init` to create a config"
            } else {
                "check the file's permissions"
            })
    };
    if path.is_dir() {
        return Err(
            Error::new(format!("`{name}` is a directory, not a config file"))
                .hint(format!("pass the file inside it, `{name}/{FILE_NAME}`")),
        );
    }
    let bytes = match crate::fs::read_bounded(path, MAX_FILE_SIZE) {
        Ok(bytes) => bytes,
        Err(crate::fs::ReadError::Io(error)) => return Err(cannot_read(error)),
        Err(crate::fs::ReadError::TooLarge { limit }) => {
            return Err(Error::new(format!(
                "`{name}` is larger than {} MiB: a config file may be at most {0} MiB",
                limit / (1024 * 1024)
            ))
            .hint("check that `--config` names an outrig.toml"));
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Ok(SourceFile::new(name, text))),
        Err(error) => {
            let offset = error.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
            let source = SourceFile::new(name, text);
            let diagnostic = Diagnostic::error("not-utf8", "the file is not UTF-8 text")
                .at("", Some(offset..offset + 1))
                .label("first byte that is not UTF-8")
                .help("TOML files are UTF-8 text; is this the right file?");
            Ok(Err(Checked {
                source,
                diagnostics: vec![diagnostic],
                file: None,
            }))
        }
    }
}

/// Run every layer over `source`. `base_dir` is where relative paths start.
pub fn check_source(
    source: SourceFile,
    base_dir: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
) -> Checked {
    suggest::reset_budget();
    let (value, spans) = match source::parse(&source) {
        Ok(parsed) => parsed,
        Err(diagnostic) => {
            return Checked {
                source,
                diagnostics: vec![*diagnostic],
                file: None,
            };
        }
    };
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    // Tables that had an unknown key: a "missing key" there is most likely that same key
    // misspelt, already reported with a suggestion.
    let mut had_unknown_key: Vec<String> = Vec::new();
    // Copied only once something has to be cut away.
    let mut pruned = std::borrow::Cow::Borrowed(&value);
    let mut clean = false;
    for round in 0..PRUNE_ROUNDS {
        let violations = schema_check::check(&pruned, &spans);
        if violations.is_empty() {
            clean = true;
            break;
        }
        let mut prune: Vec<String> = Vec::with_capacity(violations.len());
        for violation in violations {
            // Later rounds only see what cutting caused; those are not the user's mistakes.
            if round == 0 {
                if violation.diagnostic.code == "unknown-key"
                    && let Some((table, _)) = violation.diagnostic.path.rsplit_once('.')
                {
                    had_unknown_key.push(table.to_string());
                }
                diagnostics.push(violation.diagnostic);
            }
            prune.push(violation.prune);
        }
        // Deepest and highest-indexed first, so removing one never shifts another.
        prune.sort_by(|a, b| compare_pointers(b, a));
        prune.dedup();
        let pruned = pruned.to_mut();
        for pointer in &prune {
            remove_pointer(pruned, pointer);
        }
    }
    let file = if clean {
        match <ConfigFile as serde::Deserialize>::deserialize(pruned.as_ref()) {
            Ok(file) => Some(file),
            Err(error) => {
                diagnostics.push(Diagnostic::error(
                    "schema",
                    format!("the file does not match outrig's config format: {error}"),
                ));
                None
            }
        }
    } else {
        None
    };
    if let Some(file) = &file {
        let context = check::Context {
            file,
            original: &value,
            spans: &spans,
            base_dir,
            env_is_set,
        };
        diagnostics.extend(
            check::check(&context)
                .into_iter()
                .filter(|d| !(d.code == "missing-key" && had_unknown_key.contains(&d.path))),
        );
    }
    diagnostics.sort_by_key(|d| (d.span.as_ref().map_or(usize::MAX, |s| s.start), d.severity));
    let file = file.filter(|_| diagnostics.iter().all(|d| !d.is_error()));
    Checked {
        source,
        diagnostics,
        file,
    }
}

/// Read and check the config at `path`; the [`Checked`] result either way. `env_is_set`
/// tells whether a host variable is set (unset ones are warnings).
pub fn check_file(
    path: &Path,
    cwd: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
) -> Result<Checked, Error> {
    let name = display_name(path, cwd);
    let source = match read(path, &name)? {
        Ok(source) => source,
        Err(checked) => return Ok(checked),
    };
    let base_dir = path.parent().unwrap_or(Path::new("."));
    Ok(check_source(source, base_dir, env_is_set))
}

/// Find, read, check and resolve the config. Invalid configs become
/// an [`Error`] carrying every diagnostic.
pub fn load(
    explicit: Option<&Path>,
    cwd: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
) -> Result<Loaded, Error> {
    let path = locate(explicit, cwd)?;
    let path = std::path::absolute(&path).unwrap_or(path);
    let checked = check_file(&path, cwd, env_is_set)?;
    match checked.file {
        Some(ref file) if checked.error_count() == 0 => {
            let config = resolve::resolve(file, &path);
            Ok(Loaded {
                config,
                source: checked.source,
                warnings: checked.diagnostics,
            })
        }
        _ => Err(invalid(&checked)),
    }
}

/// The error for an invalid config: its diagnostics (the first [`SHOWN_DIAGNOSTICS`] in
/// full), then one line.
pub fn invalid(checked: &Checked) -> Error {
    let errors = checked.error_count();
    let mut error = Error::new(format!(
        "`{}` is invalid: {errors} error{}",
        checked.source.name,
        if errors == 1 { "" } else { "s" }
    ))
    .hint("run `outrig validate` to see every problem");
    for diagnostic in checked.diagnostics.iter().take(SHOWN_DIAGNOSTICS) {
        error = error.detail(diagnostic.render(&checked.source, true));
    }
    if let Some(more) = checked
        .diagnostics
        .len()
        .checked_sub(SHOWN_DIAGNOSTICS)
        .filter(|n| *n > 0)
    {
        error = error.detail(format!("... and {more} more diagnostics not shown\n"));
    }
    error
}

/// Order JSON pointers segment by segment, array indices numerically.
fn compare_pointers(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| -> (u8, usize, String) {
        match s.parse::<usize>() {
            Ok(n) => (0, n, String::new()),
            Err(_) => (1, 0, s.to_string()),
        }
    };
    a.split('/').map(key).cmp(b.split('/').map(key))
}

/// Remove the value at a JSON pointer, if present.
fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    if parent.is_empty() && last.is_empty() {
        return;
    }
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(index) = last.parse::<usize>()
                && index < items.len()
            {
                items.remove(index);
            }
        }
        _ => {}
    }
}
