//! The plan: what `outrig apply` will build, start, expose and remove, and why.
//!
//! Pure data and pure functions. [`desired`] turns a resolved config into the desired
//! resources (image identity by content, sandbox run settings, servers, agent);
//! [`diff::plan`] compares them with the observed podman state and the last applied
//! session; [`render`] shows the result to people and machines. Nothing here runs podman.

pub mod context;
pub mod desired;
pub mod diff;
pub mod render;
#[cfg(test)]
mod tests;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use desired::Desired;

/// Version of the JSON plan format (`--json`, `--out`); bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// A complete plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Plan {
    /// Version of this format.
    pub format_version: u32,
    /// The outrig version that made the plan.
    pub outrig_version: String,
    pub project: String,
    /// The agent the plan runs, if any.
    pub agent: Option<String>,
    /// BLAKE3 of the config file's bytes and every input of the desired state (build
    /// contexts, secret fingerprints): a saved plan is stale when this changes.
    pub config_digest: String,
    /// BLAKE3 of the observed podman state the plan was computed against.
    pub observed_fingerprint: String,
    /// The session whose applied state the plan compares with, if any.
    pub last_applied_session: Option<String>,
    pub steps: Vec<Step>,
    pub security_deltas: Vec<SecurityDelta>,
    pub summary: Summary,
    /// The desired state, as `apply` will record it.
    pub desired: Desired,
}

/// One thing `apply` will do (or, for no-ops, will not need to do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Step {
    /// Stable resource address: `image.<name>`, `sandbox.<image>`, `mcp.<image>.<server>`,
    /// `agent.<name>`, `container.<name>`.
    pub address: String,
    pub action: Action,
    /// Why, in words.
    pub reason: String,
    /// The exact podman command line this step runs, secrets masked; `<session>` stands
    /// for the session id chosen at apply time.
    pub command: Option<String>,
    /// A unified diff of what changed (Containerfile, arguments), when there is one.
    pub diff: Option<String>,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `+` build, pull or start something that does not exist yet.
    Create,
    /// `~` start with settings that changed since the last applied session.
    Update,
    /// `-/+` rebuild: an older version exists and its inputs changed.
    Replace,
    /// `-` remove something left behind.
    Remove,
    /// Nothing to do.
    NoOp,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Remove => "-",
            Action::NoOp => " ",
        }
    }
}

/// A change in security posture since the last applied session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SecurityDelta {
    pub address: String,
    /// Stable kind: `workspace-access`, `mount`, `network`, `capability`,
    /// `privileges`, `read-only`, `secret`, `server`, `tools`, `provider-url`.
    pub kind: String,
    /// Whether the sandbox gets more (`widens`) or less (`narrows`) than before.
    pub direction: Direction,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Widens,
    Narrows,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Summary {
    pub to_build: usize,
    pub to_start: usize,
    pub servers: usize,
    pub to_remove: usize,
    /// Steps whose settings differ from the last applied session.
    pub changed: usize,
    /// True when there is anything to build, pull, remove or change.
    pub has_changes: bool,
}
