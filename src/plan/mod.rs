//! The plan: what `outrig apply` will build, start, expose and remove, and why.
//!
//! Pure data and pure functions. [`desired`] turns a resolved config into the desired
//! resources (image identity by content, sandbox run settings, servers, agent);
//! [`diff::plan`] compares them with the observed podman state and the last applied
//! session; [`compare`] tells a saved plan from a fresh one; [`render`] shows a plan to
//! people and machines. Nothing here runs podman.
//!
//! A step is typed data: its [`Address`], its [`Action`], the [`Reason`]s for it, and the
//! exact [`Operation`] apply will carry out (the podman command, with the session's id left
//! as a placeholder). Words are made only by [`render`]; nothing decides by reading them.

pub mod argv;
pub mod compare;
pub mod context;
pub mod desired;
pub mod diff;
pub mod gateway;
pub mod kube;
pub mod pins;
pub mod pod;
pub mod removal;
pub mod render;
pub mod security;
#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use desired::Desired;

use crate::podman::command::{Arg, Planned};

/// Version of the JSON plan format (`--json`, `--out`); bumped on incompatible changes.
/// 2: typed addresses, reasons and operations; 6: secrets are typed arguments of the
/// commands.
pub const FORMAT_VERSION: u32 = 6;

/// The JSON Schema of the plan format; `schema/plan.schema.json` is its committed copy.
pub fn schema() -> String {
    crate::schema::generate_json_format::<Plan>()
}

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
    /// BLAKE3 of the config file's bytes and the desired state (recorded in the session;
    /// a saved plan is checked by comparing it with a fresh plan, not by this digest).
    pub config_digest: String,
    /// The session whose applied state the plan compares with, if any.
    pub last_applied_session: Option<String>,
    pub steps: Vec<Step>,
    pub security_deltas: Vec<SecurityDelta>,
    /// Whether there is an `outrig.lock`, and whether what runs matches it.
    pub lock: LockState,
    pub summary: Summary,
    /// The desired state, as `apply` will record it.
    pub desired: Desired,
}

/// One thing `apply` will do (or, for no-ops, will not need to do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Step {
    pub address: Address,
    pub action: Action,
    /// Why; rendered to words by the views.
    pub reasons: Vec<Reason>,
    /// What apply runs for this step; none for no-ops and the agent.
    pub operation: Option<Operation>,
    /// A unified diff of what changed (Containerfile, arguments), when there is one.
    pub diff: Option<String>,
}

/// The stable name of a resource: `image.<name>`, `sandbox.<image>`, `proxy.<image>`,
/// `mcp.<image>.<server>`, `agent.<name>`, `container.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    Image(String),
    Sandbox(String),
    /// The egress proxy of an image's sandbox.
    Proxy(String),
    Server {
        image: String,
        server: String,
    },
    Agent(String),
    Container(String),
    /// A podman network a session left behind.
    Network(String),
}

impl Address {
    /// The address of server `key` (`<image>.<server>`).
    pub fn server(key: &str) -> Address {
        let (image, server) = key.split_once('.').unwrap_or((key, ""));
        Address::Server {
            image: image.to_string(),
            server: server.to_string(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Image(name) => write!(f, "image.{name}"),
            Address::Sandbox(name) => write!(f, "sandbox.{name}"),
            Address::Proxy(name) => write!(f, "proxy.{name}"),
            Address::Server { image, server } => write!(f, "mcp.{image}.{server}"),
            Address::Agent(name) => write!(f, "agent.{name}"),
            Address::Container(name) => write!(f, "container.{name}"),
            Address::Network(name) => write!(f, "network.{name}"),
        }
    }
}

impl FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Address, String> {
        let (kind, rest) = text
            .split_once('.')
            .ok_or_else(|| format!("`{text}` is not a resource address"))?;
        let nonempty = |s: &str| -> Result<String, String> {
            if s.is_empty() {
                Err(format!("`{text}` names no resource"))
            } else {
                Ok(s.to_string())
            }
        };
        match kind {
            "image" => Ok(Address::Image(nonempty(rest)?)),
            "sandbox" => Ok(Address::Sandbox(nonempty(rest)?)),
            "proxy" => Ok(Address::Proxy(nonempty(rest)?)),
            "agent" => Ok(Address::Agent(nonempty(rest)?)),
            "container" => Ok(Address::Container(nonempty(rest)?)),
            "network" => Ok(Address::Network(nonempty(rest)?)),
            "mcp" => match rest.split_once('.') {
                Some((image, server)) => Ok(Address::Server {
                    image: nonempty(image)?,
                    server: nonempty(server)?,
                }),
                None => Err(format!("`{text}` is not `mcp.<image>.<server>`")),
            },
            _ => Err(format!("`{text}` is not a resource address")),
        }
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Address, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Address {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Address".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`image.<name>`, `sandbox.<image>`, `proxy.<image>`, `mcp.<image>.<server>`, `agent.<name>`, `container.<name>` or `network.<name>`",
            "type": "string",
            "pattern": "^(image|sandbox|proxy|agent|container|network)\\.[^.].*$|^mcp\\.[^.]+\\.[^.]+$"
        })
    }
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

    /// The action's name in records: `create`, `update`, ...
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Remove => "remove",
            Action::NoOp => "no_op",
        }
    }
}

/// Why a step is what it is. Rendered to words by [`render`]; for decisions, match on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reason {
    /// A built image that does not exist, with no earlier build to replace.
    ImageMissing,
    /// A built image that exists under its content-addressed tag.
    ImageCurrent {
        reference: String,
    },
    /// An existing image (`from`) that is present locally.
    ImagePresent {
        reference: String,
    },
    /// An existing image that is not present locally and may be pulled.
    ImageNotLocal,
    /// `pull = "always"`: the registry is asked for a newer image.
    PullAlways,
    /// The image replaces this earlier build.
    Replaces {
        reference: String,
    },
    ContainerfileChanged,
    /// Files of the build context changed; `changes` is empty when the earlier context's
    /// manifest is not cached, and lists at most five, `more` counting the rest.
    ContextChanged {
        changes: Vec<FileChange>,
        more: usize,
    },
    BuildArgumentsChanged,
    /// The labels of the earlier build do not say which input changed.
    BuildInputsChanged,
    /// Nothing was applied for this project yet.
    NothingApplied,
    /// The same as in the last applied session.
    Unchanged,
    /// New since the last applied session.
    New,
    /// The sandbox runs another image than in the last applied session.
    ImageDiffers {
        last: String,
        planned: String,
    },
    RunSettingChanged {
        setting: RunSetting,
    },
    ServerSettingChanged {
        setting: ServerSetting,
    },
    /// A secret's value changed (told by its fingerprint): `name` is the environment
    /// variable or build argument, `variables` the host variables it is made of.
    SecretValueChanged {
        name: String,
        variables: Vec<String>,
    },
    AgentSettingChanged {
        setting: AgentSetting,
    },
    /// A container of this project whose session is gone.
    /// An egress network a session that is gone left behind (outrig was killed).
    OrphanNetwork {
        session: String,
    },
    Orphan {
        session: String,
        state: String,
    },
    /// A container of a session that is running or kept.
    LiveSession {
        session: String,
        state: String,
    },
    /// Servers start in a sandbox another session kept (`outrig mcp --attach`).
    Attached {
        container: String,
    },
    /// The image is not the one `outrig.lock` pins (a reference, or a `from` image's id).
    DiffersFromLock {
        pinned: String,
        now: String,
    },
}

/// One changed entry of a build context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct FileChange {
    pub path: String,
    pub change: FileChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FileChangeKind {
    Added,
    Removed,
    /// Its content (or type, or link target) changed.
    Modified,
    /// Only its permission bits changed (octal).
    ModeChanged {
        old: String,
        new: String,
    },
}

/// A sandbox setting that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunSetting {
    Network,
    /// The egress allow-list or the proxy's image.
    Egress,
    Workspace,
    Mounts,
    Capabilities,
    SecurityOptions,
    Limits,
    UserNamespace,
}

/// A server setting that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerSetting {
    Command,
    Environment,
    WorkingDirectory,
    Limits,
}

/// An agent setting that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentSetting {
    Model,
    Provider,
    ToolAllowList,
    Image,
    Limits,
}

/// Exactly what apply runs for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// `podman build`; its output goes to the session's `logs/build-<image>.log`.
    Build { image: String, command: Planned },
    /// `podman pull`.
    Pull { command: Planned },
    /// `podman rm` of a container left behind.
    RemoveContainer { container: String, command: Planned },
    /// `podman network rm` of an egress network left behind.
    RemoveNetwork { network: String, command: Planned },
    /// `podman run` of the session's sandbox, then the watcher that removes it when
    /// outrig ends, however it ends.
    RunSandbox {
        image: String,
        /// The container's name.
        container: Arg,
        command: Planned,
        /// `podman exec --interactive` of the watcher (see
        /// [`desired::Desired::watch_command`]).
        watch: Planned,
    },
    /// The egress proxy of a sandbox: its internal network, the proxy container and its
    /// watcher; the probes run once the sandbox runs, before any server starts.
    RunProxy {
        image: String,
        /// The proxy container's name and the network's.
        container: Arg,
        network: Arg,
        commands: Box<argv::ProxyCommands>,
    },
    /// `podman exec` of a server: detached with its stdio on pipes outrig passes down
    /// (local engines), or interactive with its stdio relayed by podman (remote ones).
    StartServer {
        /// The container it runs in.
        container: Arg,
        /// How its stdio reaches outrig.
        transport: desired::Transport,
        command: Planned,
    },
}

impl Operation {
    /// The podman command the operation runs.
    pub fn command(&self) -> &Planned {
        match self {
            Operation::Build { command, .. }
            | Operation::Pull { command }
            | Operation::RemoveContainer { command, .. }
            | Operation::RemoveNetwork { command, .. }
            | Operation::RunSandbox { command, .. }
            | Operation::StartServer { command, .. } => command,
            Operation::RunProxy { commands, .. } => &commands.proxy,
        }
    }
}

/// A change in security posture since the last applied session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SecurityDelta {
    pub address: Address,
    pub kind: DeltaKind,
    /// Whether the sandbox gets more (`widens`) or less (`narrows`) than before.
    pub direction: Direction,
    /// Exactly what changed.
    pub change: SecurityChange,
}

/// A change in what a sandbox, a server or an agent may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SecurityChange {
    /// The workspace is mounted (first plan).
    WorkspaceGranted {
        host: String,
        mount: String,
        access: crate::config::model::Access,
    },
    WorkspaceChanged {
        old_host: String,
        old_access: crate::config::model::Access,
        host: String,
        access: crate::config::model::Access,
    },
    Network {
        old: desired::Network,
        new: desired::Network,
    },
    /// A destination newly allowed through the egress proxy.
    EgressAdded {
        destination: crate::egress::Destination,
    },
    /// A destination no longer allowed.
    EgressRemoved {
        destination: crate::egress::Destination,
    },
    MountAdded {
        source: String,
        target: String,
        access: crate::config::model::Access,
    },
    MountChanged {
        target: String,
        old_source: String,
        old_access: crate::config::model::Access,
        source: String,
        access: crate::config::model::Access,
    },
    MountRemoved {
        target: String,
    },
    CapabilityAdded {
        capability: String,
    },
    /// `cap-drop` no longer has `ALL`: podman's default set applies.
    CapabilitiesNotAllDropped,
    /// `no-new-privileges` off.
    NewPrivilegesAllowed,
    RootFilesystemWritable,
    /// A secret newly passed to a server as variable `name`.
    SecretPassed {
        template: String,
        name: String,
    },
    ServerAdded {
        server: String,
    },
    ServerRemoved,
    /// No allow-list: every tool of the image (first plan).
    EveryToolAllowed,
    ToolsAllowed {
        patterns: Vec<String>,
    },
    AllowListRemoved,
    ToolsNewlyAllowed {
        patterns: Vec<String>,
    },
    /// The API key goes to this URL (first plan).
    ApiKeySent {
        key: String,
        url: String,
    },
    ApiKeyMoved {
        key: String,
        url: String,
        old_url: String,
    },
    /// Who root in the sandbox is on the host (first plan, a change, and every plan while
    /// it is host root).
    UserNamespace {
        mode: desired::UserNamespace,
    },
    /// podman cannot hold the sandbox to its limits, so they are not passed.
    LimitsNotEnforced {
        pids_limit: u32,
        memory: String,
        why: LimitsWhy,
    },
    /// A server with secrets shares its sandbox with other servers, which can read its
    /// environment and signal it.
    SecretsShared {
        server: String,
        secrets: Vec<String>,
        others: Vec<String>,
    },
    /// The image is not the one `outrig.lock` pins: its reference (a built image's content
    /// hash) or, for a `from` image, the id it resolves to.
    ImageUnpinned {
        pinned: String,
        now: String,
    },
    /// A server `outrig.lock` has no entry for: its tools are pinned on first use.
    ServerNotPinned {
        server: String,
    },
    /// A tool offered that `outrig.lock` does not have (seen by session `session`).
    ToolExposed {
        tool: String,
        reach: Reach,
        session: String,
    },
    /// A pinned tool no longer offered.
    ToolWithdrawn {
        tool: String,
        reach: Reach,
        session: String,
    },
    /// A tool offered with a definition other than the pinned one: the top-level fields
    /// that differ and a unified diff from the pin to what was seen.
    ToolRedefined {
        tool: String,
        fields: Vec<String>,
        diff: String,
        reach: Reach,
        session: String,
    },
}

/// Whether a tool would reach a model: the plan's agent's allow-list decides, and without
/// an agent every tool is served to MCP clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "to", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reach {
    Agent { agent: String, allowed: bool },
    Clients,
}

/// Whether the project has an `outrig.lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// No lock yet: the first apply (or `outrig lock`) writes one.
    #[default]
    Absent,
    /// What runs matches the lock, as far as the sessions have seen.
    Matches,
    /// What runs, or what a session saw, differs from the lock (the security section
    /// says how).
    Drifted,
}

/// The tools an agent (or, without one, an MCP client) is offered and what their
/// definitions cost a model's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ToolSurface {
    pub agent: Option<String>,
    pub tools: usize,
    /// Characters of the serialised definitions, divided by four.
    pub tokens: usize,
    /// The same for the last applied session, when it recorded its definitions.
    pub last_applied: Option<SurfaceSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SurfaceSize {
    pub tools: usize,
    pub tokens: usize,
}

impl SecurityChange {
    /// The kind of delta this change is.
    pub fn kind(&self) -> DeltaKind {
        match self {
            SecurityChange::WorkspaceGranted { .. } | SecurityChange::WorkspaceChanged { .. } => {
                DeltaKind::WorkspaceAccess
            }
            SecurityChange::Network { .. }
            | SecurityChange::EgressAdded { .. }
            | SecurityChange::EgressRemoved { .. } => DeltaKind::Network,
            SecurityChange::MountAdded { .. }
            | SecurityChange::MountChanged { .. }
            | SecurityChange::MountRemoved { .. } => DeltaKind::Mount,
            SecurityChange::CapabilityAdded { .. } | SecurityChange::CapabilitiesNotAllDropped => {
                DeltaKind::Capability
            }
            SecurityChange::NewPrivilegesAllowed => DeltaKind::Privileges,
            SecurityChange::RootFilesystemWritable => DeltaKind::ReadOnly,
            SecurityChange::SecretPassed { .. } => DeltaKind::Secret,
            SecurityChange::ServerAdded { .. } | SecurityChange::ServerRemoved => DeltaKind::Server,
            SecurityChange::EveryToolAllowed
            | SecurityChange::ToolsAllowed { .. }
            | SecurityChange::AllowListRemoved
            | SecurityChange::ToolsNewlyAllowed { .. } => DeltaKind::Tools,
            SecurityChange::ApiKeySent { .. } | SecurityChange::ApiKeyMoved { .. } => {
                DeltaKind::ProviderUrl
            }
            SecurityChange::UserNamespace { .. }
            | SecurityChange::LimitsNotEnforced { .. }
            | SecurityChange::SecretsShared { .. } => DeltaKind::Isolation,
            SecurityChange::ImageUnpinned { .. }
            | SecurityChange::ServerNotPinned { .. }
            | SecurityChange::ToolExposed { .. }
            | SecurityChange::ToolWithdrawn { .. }
            | SecurityChange::ToolRedefined { .. } => DeltaKind::Lock,
        }
    }
}

/// What a security delta is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeltaKind {
    WorkspaceAccess,
    Mount,
    Network,
    Capability,
    Privileges,
    ReadOnly,
    Secret,
    Server,
    Tools,
    ProviderUrl,
    /// What the engine does or does not isolate: the user namespace, limits it cannot
    /// enforce, servers sharing a sandbox with secrets.
    Isolation,
    /// A difference from `outrig.lock`.
    Lock,
}

/// Why podman cannot enforce a sandbox's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitsWhy {
    /// Rootless podman on a cgroups v1 host.
    RootlessCgroupsV1,
    /// The engine's cgroup lacks the pids or memory controller.
    NoControllers,
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
    /// The tools offered, when a session has seen them or the lock pins them.
    pub tool_surface: Option<ToolSurface>,
}

impl Step {
    /// Whether the step differs from the last applied session (or nothing was applied).
    pub fn is_change(&self) -> bool {
        match self.action {
            Action::Update | Action::Replace | Action::Remove => true,
            Action::NoOp => false,
            Action::Create => !self.reasons.contains(&Reason::Unchanged),
        }
    }
}
