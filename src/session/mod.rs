//! The session store: one directory per `apply` (or `outrig mcp`) under the session root,
//! holding `session.json`. This module reads records; `plan` uses it to find the last
//! applied state of a project and to tell orphaned containers from live ones.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Desired;

/// Version of `session.json`.
pub const FORMAT_VERSION: u32 = 1;
pub const RECORD_FILE: &str = "session.json";

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An outrig process is working on it (see `pid`).
    Running,
    /// Finished; its sandbox was left up with `--keep`.
    Kept,
    /// Finished and torn down.
    Finished,
    /// Ended by an error.
    Failed,
    /// Ended by a signal.
    Interrupted,
}

/// The parts of `session.json` that planning reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub format_version: u32,
    pub id: String,
    pub project: String,
    pub project_id: String,
    pub status: Status,
    /// The outrig process working on a running session.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The desired state as applied.
    #[serde(default)]
    pub desired: Option<Desired>,
}

impl Record {
    /// Whether the session still owns its containers: running in a live process, or kept.
    pub fn owns_containers(&self) -> bool {
        match self.status {
            Status::Kept => true,
            Status::Running => self.pid.is_some_and(process_alive),
            _ => false,
        }
    }
}

/// Whether a process exists (on this machine).
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The session root: `--session-root`, else the config's `session-root`, else
/// `$XDG_DATA_HOME/outrig/sessions`, else `~/.local/share/outrig/sessions`.
pub fn root(flag: Option<&Path>, config: Option<&Path>) -> PathBuf {
    if let Some(path) = flag.or(config) {
        return path.to_path_buf();
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    data.join("outrig/sessions")
}

/// Read one session's record.
pub fn read(dir: &Path) -> Result<Record, String> {
    let text = std::fs::read_to_string(dir.join(RECORD_FILE)).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Session ids under `root`, newest first (ids sort by their start time).
pub fn ids(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    ids.sort_by(|a, b| b.cmp(a));
    ids
}

/// The newest session of `project_id` that applied a desired state. Unreadable records
/// are skipped.
pub fn last_applied(root: &Path, project_id: &str) -> Option<Record> {
    ids(root)
        .into_iter()
        .filter_map(|id| read(&root.join(&id)).ok())
        .find(|r| r.project_id == project_id && r.desired.is_some() && r.status != Status::Failed)
}

/// Records of `project_id` by id (unreadable ones skipped), for orphan detection.
pub fn records(root: &Path, project_id: &str) -> Vec<Record> {
    ids(root)
        .into_iter()
        .filter_map(|id| read(&root.join(&id)).ok())
        .filter(|r| r.project_id == project_id)
        .collect()
}
