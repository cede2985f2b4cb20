//! The process environment, read once. The only module that reads environment variables
//! (enforced by `clippy.toml`): everything else is handed an [`Environment`] or a lookup
//! function, so tests can give each piece exactly the environment it should see.

// This is the one place allowed to (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Variables and places outrig takes from its environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    /// The working directory.
    pub cwd: PathBuf,
}

impl Environment {
    /// The environment of this process.
    pub fn from_process() -> std::io::Result<Environment> {
        Ok(Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir()?,
        })
    }

    /// A variable's value, when set (possibly empty).
    pub fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// A variable's value, when set and not empty.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn home_dir(&self, xdg: &str, fallback: &str) -> PathBuf {
        self.non_empty(xdg)
            .map(PathBuf::from)
            .or_else(|| {
                self.non_empty("HOME")
                    .map(|h| PathBuf::from(h).join(fallback))
            })
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join("outrig")
    }

    /// outrig's data directory: `$XDG_DATA_HOME/outrig`, else `~/.local/share/outrig`
    /// (sessions, the fingerprint key).
    pub fn data_dir(&self) -> PathBuf {
        self.home_dir("XDG_DATA_HOME", ".local/share")
    }

    /// outrig's cache directory: `$XDG_CACHE_HOME/outrig`, else `~/.cache/outrig`.
    pub fn cache_dir(&self) -> PathBuf {
        self.home_dir("XDG_CACHE_HOME", ".cache")
    }

    /// The podman program named by `OUTRIG_PODMAN`, if any.
    pub fn podman_override(&self) -> Option<String> {
        self.non_empty("OUTRIG_PODMAN")
    }

    /// The path of the running outrig binary.
    pub fn current_exe(&self) -> std::io::Result<PathBuf> {
        std::env::current_exe()
    }
}
