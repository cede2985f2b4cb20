//! The session store: one directory per `apply` (or `outrig mcp`) under the session root,
//! holding `session.json`. It knows records, not plans: the desired state a session
//! applied is kept as the JSON the plan layer wrote, and read back by it. The clock and
//! the source of session ids are injected ([`Sources`]), so records and snapshots can be
//! made stable in tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod log;

/// Version of `session.json`. 2: steps carry the plan's typed actions.
pub const FORMAT_VERSION: u32 = 2;
pub const RECORD_FILE: &str = "session.json";

/// The plan a session carried out (`plan --json` format), in its directory.
pub const PLAN_FILE: &str = "plan.json";

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
    /// Its outrig process died without ending it (killed, or the machine went down): the
    /// record says `running` on disk until `outrig clean` rewrites it. A gateway killed
    /// by its client reads as interrupted instead (see [`Record::settled`]).
    Crashed,
}

impl Status {
    /// The status as records and `outrig ls` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Kept => "kept",
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Crashed => "crashed",
        }
    }
}

/// `session.json`: what a session did, written at its start and after every step, so a
/// crash leaves a readable record. Fields added later default when reading older records.
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
    /// The desired state as applied (the plan's `desired`, as JSON).
    #[serde(default)]
    pub desired: Option<serde_json::Value>,
    /// The images the session's plan uses (references), so `clean --images` keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images_used: Vec<String>,
    #[serde(default)]
    pub outrig_version: String,
    #[serde(default)]
    pub config_path: String,
    #[serde(default)]
    pub config_digest: String,
    #[serde(default)]
    pub agent: Option<String>,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Every step run, in order.
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    /// Sandbox containers by image name.
    #[serde(default)]
    pub containers: std::collections::BTreeMap<String, ContainerRecord>,
    /// Servers by `<image>.<server>`.
    #[serde(default)]
    pub servers: std::collections::BTreeMap<String, ServerRecord>,
    /// What the session ran: `apply` or `mcp`.
    #[serde(default = "default_command")]
    pub command: String,
    /// The kept sandbox container this session started its servers in (`outrig mcp
    /// --attach`); it belongs to another session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<String>,
    /// The agent's model (`<name>` and the provider's identifier) and provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Tokens the agent spent, as the providers reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageRecord>,
    /// How the session stood against `outrig.lock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockRecord>,
    /// The egress proxies of sandboxes with an allow-list, by image name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub egress: std::collections::BTreeMap<String, EgressRecord>,
    /// How the session ended, written the moment it did, before the teardown starts: a
    /// client that kills outrig during the teardown takes nothing from the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<End>,
    /// How the teardown went, once it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<TeardownRecord>,
    /// Tool calls made in the session (by the agent, or by the gateway's clients).
    #[serde(default)]
    pub tool_calls: u64,
    /// The machine's boot the session ran in: a record left `running` by a boot that is
    /// over crashed with the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// Why and when a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub reason: EndReason,
    /// RFC 3339, UTC; none when the end was found after the fact (see
    /// [`EndReason::Killed`]).
    #[serde(default)]
    pub at: Option<String>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Its job was done: the agent answered, or the servers were proven.
    Completed,
    /// The gateway's client closed the session (end of input on stdin).
    ClientClosed,
    /// A step or the session's work failed.
    Failed,
    #[serde(rename = "sigint")]
    Interrupt,
    #[serde(rename = "sigterm")]
    Terminate,
    #[serde(rename = "sighup")]
    HangUp,
    /// A gateway whose process is gone without a word: its client (or the kernel) killed
    /// it with SIGKILL, which no process can record. Found by reading the record.
    Killed,
}

impl EndReason {
    /// The reason in words, for `outrig ls` and messages.
    pub fn describe(self) -> &'static str {
        match self {
            EndReason::Completed => "completed",
            EndReason::ClientClosed => "the client closed the session",
            EndReason::Failed => "failed",
            EndReason::Interrupt => "SIGINT",
            EndReason::Terminate => "SIGTERM",
            EndReason::HangUp => "SIGHUP",
            EndReason::Killed => "killed (SIGKILL) by its client or the system",
        }
    }
}

/// The teardown of a session: started right after the end was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeardownRecord {
    pub status: TeardownStatus,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Containers and networks it could not remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeardownStatus {
    /// Under way (on disk: outrig is still tearing down, or was killed doing so).
    Started,
    /// Everything the session started is gone (or kept, as asked).
    Done,
    /// Something could not be removed (see `left`).
    LeftBehind,
    /// outrig was killed before it finished; the sandboxes' watchers removed them (found
    /// by reading the record).
    CutShort,
}

/// A sandbox's egress proxy: its internal network, where the proxy listens, and what the
/// probes found before any server started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRecord {
    /// The sandbox's internal network.
    pub network: String,
    #[serde(default)]
    pub network_removed: bool,
    /// The proxy's address on that network.
    #[serde(default)]
    pub proxy_address: String,
    #[serde(default)]
    pub probes: Vec<crate::egress::Probe>,
}

/// Tokens an agent spent over a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What a session found against `outrig.lock`, and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// `trust-on-first-use`, `locked` or `update`.
    pub mode: String,
    /// Every difference between what ran and the lock.
    pub drift: Vec<DriftRecord>,
    /// Tools not served because they differ from the lock (`--locked`), as `<server>__<tool>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<String>,
    /// Whether the session wrote the lock.
    pub wrote: bool,
}

/// One difference from `outrig.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRecord {
    /// `image.<name>` or `mcp.<image>.<server>`.
    pub address: String,
    /// The tool (`<server>__<tool>`), for a tool's drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub change: DriftChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftChange {
    /// The image is not the pinned one.
    ImageUnpinned,
    /// The lock has no entry for the server.
    ServerUnpinned,
    ToolAdded,
    ToolRemoved,
    ToolChanged,
}

fn default_command() -> String {
    "apply".to_string()
}

/// Something an MCP server offers besides tools (its declared capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Offer {
    Prompts,
    Resources,
    /// Subscriptions to resources (`resources.subscribe`).
    ResourceSubscriptions,
    Completions,
    Logging,
}

impl Offer {
    pub const ALL: [Offer; 5] = [
        Offer::Prompts,
        Offer::Resources,
        Offer::ResourceSubscriptions,
        Offer::Completions,
        Offer::Logging,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Offer::Prompts => "prompts",
            Offer::Resources => "resources",
            Offer::ResourceSubscriptions => "resource-subscriptions",
            Offer::Completions => "completions",
            Offer::Logging => "logging",
        }
    }
}

/// One step as it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub address: String,
    pub action: String,
    /// The podman command line, secrets masked (they are never on it).
    pub command: Option<String>,
    pub status: StepStatus,
    pub started_at: String,
    pub duration_ms: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub id: String,
    pub image: String,
    #[serde(default)]
    pub removed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerRecord {
    pub protocol_version: String,
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    pub tools: Vec<ToolRecord>,
    /// What it declared it offers besides tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offers: Option<Vec<Offer>>,
    /// Where its stderr went, relative to the session directory.
    pub stderr_log: String,
    /// Set when the server exited while the session was using it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolRecord {
    pub name: String,
    /// BLAKE3 (16 hex digits) of the tool's whole definition as the server gave it.
    pub definition_hash: String,
    /// The whole definition, canonical (`lock::canonical`), secret values taken out: what
    /// `outrig plan` compares with `outrig.lock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

/// A session being recorded.
pub struct Session {
    pub dir: std::path::PathBuf,
    pub record: Record,
    sources: Sources,
    /// Tool calls made so far, counted by whoever makes them ([`Session::call_counter`]),
    /// written into the record at every save.
    tool_calls: Arc<std::sync::atomic::AtomicU64>,
}

/// Where a session's times and id suffixes come from.
pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

/// The random part of session ids.
pub trait IdSource: Send + Sync {
    fn suffix(&self) -> u16;
}

/// The system clock and random ids.
pub struct System;

impl Clock for System {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

impl IdSource for System {
    fn suffix(&self) -> u16 {
        rand::random()
    }
}

/// The clock and id source a session uses.
#[derive(Clone)]
pub struct Sources {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
}

impl Sources {
    pub fn system() -> Sources {
        Sources {
            clock: Arc::new(System),
            ids: Arc::new(System),
        }
    }
}

/// A time as RFC 3339 UTC, to the millisecond.
pub fn timestamp(time: jiff::Timestamp) -> String {
    time.round(jiff::Unit::Millisecond)
        .unwrap_or(time)
        .to_string()
}

/// The current time as RFC 3339 UTC (for log lines).
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

impl Session {
    /// Start a session: a new directory `<root>/<id>` (or the explicit, empty `dir`,
    /// linked from the root as `<root>/<id>`), with `logs/`, and a first record.
    pub fn create(
        root: &Path,
        explicit: Option<&Path>,
        project: &str,
        project_id: &str,
        sources: Sources,
    ) -> std::io::Result<Session> {
        std::fs::create_dir_all(root)?;
        let (id, dir) = loop {
            let id = format!(
                "{}-{:04x}",
                sources.clock.now().strftime("%Y%m%dT%H%M%S"),
                sources.ids.suffix()
            );
            let link = root.join(&id);
            match explicit {
                None => match std::fs::create_dir(&link) {
                    Ok(()) => break (id, link),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                },
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    if std::fs::read_dir(dir)?.next().is_some() {
                        return Err(std::io::Error::other(format!(
                            "`{}` is not empty",
                            dir.display()
                        )));
                    }
                    let dir = std::path::absolute(dir)?;
                    match std::os::unix::fs::symlink(&dir, &link) {
                        Ok(()) => break (id, dir),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        std::fs::create_dir_all(dir.join("logs"))?;
        let started_at = timestamp(sources.clock.now());
        let session = Session {
            sources,
            dir,
            record: Record {
                format_version: FORMAT_VERSION,
                id,
                project: project.to_string(),
                project_id: project_id.to_string(),
                status: Status::Running,
                pid: Some(std::process::id()),
                desired: None,
                images_used: Vec::new(),
                outrig_version: env!("CARGO_PKG_VERSION").to_string(),
                config_path: String::new(),
                config_digest: String::new(),
                agent: None,
                started_at,
                ended_at: None,
                exit_code: None,
                steps: Vec::new(),
                containers: Default::default(),
                servers: Default::default(),
                command: default_command(),
                attached_to: None,
                model: None,
                provider: None,
                usage: None,
                lock: None,
                egress: Default::default(),
                end: None,
                teardown: None,
                tool_calls: 0,
                boot_id: boot_id(),
            },
            tool_calls: Default::default(),
        };
        session.save()?;
        Ok(session)
    }

    /// The counter of the session's tool calls, for the toolbox that makes them.
    pub fn call_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.tool_calls.clone()
    }

    /// Record, durably, that the session ended — why, when, with what status and exit
    /// code — and that the teardown starts. Written before any teardown work, so a client
    /// that follows its signal with SIGKILL finds the record complete.
    pub fn record_end(
        &mut self,
        status: Status,
        reason: EndReason,
        exit_code: i32,
    ) -> std::io::Result<()> {
        let now = self.now();
        self.record.status = status;
        self.record.exit_code = Some(exit_code);
        self.record.ended_at = Some(now.clone());
        self.record.end = Some(End {
            reason,
            at: Some(now.clone()),
        });
        self.record.teardown = Some(TeardownRecord {
            status: TeardownStatus::Started,
            started_at: now,
            ended_at: None,
            left: Vec::new(),
        });
        self.save()
    }

    /// Record how the teardown went (`left`: what it could not remove); the session's
    /// process is done with the record.
    pub fn record_teardown(&mut self, left: Vec<String>) -> std::io::Result<()> {
        let now = self.now();
        let teardown = self.record.teardown.get_or_insert_with(|| TeardownRecord {
            status: TeardownStatus::Started,
            started_at: now.clone(),
            ended_at: None,
            left: Vec::new(),
        });
        teardown.status = if left.is_empty() {
            TeardownStatus::Done
        } else {
            TeardownStatus::LeftBehind
        };
        teardown.ended_at = Some(now);
        teardown.left = left;
        self.record.pid = None;
        self.save()
    }

    /// The session clock's time, as recorded.
    pub fn now(&self) -> String {
        timestamp(self.sources.clock.now())
    }

    /// Write the record atomically (and durably: the file is synced before it replaces the
    /// old one).
    pub fn save(&self) -> std::io::Result<()> {
        let calls = self.tool_calls.load(std::sync::atomic::Ordering::SeqCst);
        let mut record = std::borrow::Cow::Borrowed(&self.record);
        if calls > record.tool_calls {
            record.to_mut().tool_calls = calls;
        }
        let mut text = serde_json::to_vec_pretty(&*record).map_err(std::io::Error::other)?;
        text.push(b'\n');
        crate::fs::write_atomic(&self.dir.join(RECORD_FILE), &text)
    }

    pub fn log_path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join("logs").join(name)
    }

    /// Open (append) one of the session's logs.
    pub fn open_log(&self, name: &str) -> Result<log::AppendLog, crate::error::Error> {
        log::AppendLog::open(&self.log_path(name)).map_err(|e| {
            crate::error::Error::new(format!("cannot create the session's logs/{name}"))
                .cause(e.to_string())
        })
    }
}

impl Record {
    /// The images the session's plan uses: as recorded, or for a record written before
    /// outrig recorded them, as its desired state names them.
    pub fn images_used(&self) -> Vec<String> {
        if !self.images_used.is_empty() {
            return self.images_used.clone();
        }
        let Some(images) = self
            .desired
            .as_ref()
            .and_then(|d| d.get("images"))
            .and_then(|i| i.as_object())
        else {
            return Vec::new();
        };
        images
            .values()
            .filter_map(|i| i.get("reference")?.as_str().map(str::to_string))
            .collect()
    }

    /// Whether the session still owns its containers: running in a live process (tearing
    /// down included), or kept.
    pub fn owns_containers(&self) -> bool {
        match self.status {
            Status::Kept => true,
            _ => self.pid.is_some_and(process_alive),
        }
    }

    /// The record as it stands when its process may be gone: what the process could not
    /// write itself.
    ///
    /// - `running` with its process gone: a gateway (`outrig mcp`) was killed — its client
    ///   stops it so (mcpo sends SIGKILL at once), and the sandboxes' watchers removed what
    ///   it started — so it reads `interrupted`, reason `killed`; anything else, or a
    ///   record of an earlier boot of the machine, reads [`Status::Crashed`].
    /// - a teardown `started` whose process is gone was cut short (the watchers finished
    ///   it).
    pub fn settled(mut self) -> Record {
        let this_boot = boot_id();
        let same_boot = self.boot_id.is_some() && self.boot_id == this_boot;
        let earlier_boot = self.boot_id.is_some() && !same_boot;
        if self.pid.is_some_and(process_alive) && !earlier_boot {
            return self;
        }
        if self.status == Status::Running {
            if self.command == "mcp" && same_boot {
                self.status = Status::Interrupted;
                self.end = Some(End {
                    reason: EndReason::Killed,
                    at: None,
                });
            } else {
                self.status = Status::Crashed;
            }
        } else if let Some(teardown) = &mut self.teardown
            && teardown.status == TeardownStatus::Started
            && self.pid.is_some()
        {
            teardown.status = TeardownStatus::CutShort;
        }
        self
    }
}

/// This boot of the machine (Linux's boot id), when it can be read.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

/// Whether a process exists (on this machine).
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The session root: `--session-root`, else the config's `session-root`, else
/// `sessions` in outrig's data directory (`$XDG_DATA_HOME/outrig`).
pub fn root(flag: Option<&Path>, config: Option<&Path>, data_dir: &Path) -> PathBuf {
    if let Some(path) = flag.or(config) {
        return path.to_path_buf();
    }
    data_dir.join("sessions")
}

/// Read one session's record, [settled](Record::settled): a `running` record whose
/// process is gone reads as crashed, or as an interrupted gateway ([`persist_settled`]
/// writes that down).
pub fn read(dir: &Path) -> Result<Record, String> {
    let bytes =
        crate::fs::read_bounded(&dir.join(RECORD_FILE), MAX_RECORD_SIZE).map_err(|e| match e {
            crate::fs::ReadError::Io(e) => e.to_string(),
            crate::fs::ReadError::TooLarge { limit } => {
                format!("larger than {} MiB", limit >> 20)
            }
        })?;
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let mut record = record.settled();
    // A killed gateway could not count its last calls; its audit log did.
    if record
        .end
        .as_ref()
        .is_some_and(|e| e.reason == EndReason::Killed)
    {
        // Bounded, and never a pipe: a record is read by `ls` and `plan`.
        let audited = crate::fs::read_bounded(&dir.join("logs").join(TOOL_LOG), MAX_TOOL_LOG)
            .map(|log| log.iter().filter(|b| **b == b'\n').count() as u64)
            .unwrap_or(0);
        record.tool_calls = record.tool_calls.max(audited);
    }
    Ok(record)
}

/// The audit log of tool calls, in `logs/`.
pub const TOOL_LOG: &str = "tools.jsonl";

/// The largest audit log a killed gateway's calls are counted from.
const MAX_TOOL_LOG: u64 = 64 << 20;

/// The status a record has on disk (a crashed one still says `running` there).
pub fn read_raw_status(dir: &Path) -> Option<Status> {
    let bytes = crate::fs::read_bounded(&dir.join(RECORD_FILE), MAX_RECORD_SIZE).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    serde_json::from_value(value.get("status")?.clone()).ok()
}

/// Write down what reading found of a session whose process is gone (`record` as
/// [`read`] settled it): its status, and no pid.
pub fn persist_settled(dir: &Path, record: &Record) -> std::io::Result<()> {
    let mut record = record.clone();
    record.pid = None;
    let session = Session {
        dir: dir.to_path_buf(),
        record,
        sources: Sources::system(),
        tool_calls: Default::default(),
    };
    session.save()
}

/// Largest `session.json` outrig reads.
pub const MAX_RECORD_SIZE: u64 = 64 << 20;

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

/// Records of `project_id` by id (unreadable ones skipped), for orphan detection.
pub fn records(root: &Path, project_id: &str) -> Vec<Record> {
    ids(root)
        .into_iter()
        .filter_map(|id| read(&root.join(&id)).ok())
        .filter(|r| r.project_id == project_id)
        .collect()
}

/// Which session a command was given: `latest` (the newest), a whole id, or a prefix of
/// exactly one id. `ids` are newest first, as [`ids`] returns them.
pub fn choose<'a>(ids: &'a [String], reference: &str) -> Result<&'a str, Unmatched> {
    if reference == LATEST {
        return ids.first().map(String::as_str).ok_or(Unmatched::None);
    }
    if reference.is_empty() {
        return Err(Unmatched::None);
    }
    if let Some(id) = ids.iter().find(|id| *id == reference) {
        return Ok(id);
    }
    let matching: Vec<&String> = ids.iter().filter(|id| id.starts_with(reference)).collect();
    match matching.as_slice() {
        [] => Err(Unmatched::None),
        [id] => Ok(id),
        _ => Err(Unmatched::Ambiguous(
            matching.into_iter().cloned().collect(),
        )),
    }
}

/// The word that names the newest session.
pub const LATEST: &str = "latest";

/// Why [`choose`] found no session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    None,
    /// The prefix matches these (newest first).
    Ambiguous(Vec<String>),
}

impl Unmatched {
    /// The error for `reference` under `root`, where `ids` were looked at.
    pub fn error(&self, reference: &str, what: &str, ids: &[String]) -> crate::error::Error {
        use crate::error::Error;
        match self {
            Unmatched::Ambiguous(candidates) => {
                let shown: Vec<&str> = candidates.iter().take(10).map(String::as_str).collect();
                let more = candidates.len().saturating_sub(shown.len());
                Error::new(format!(
                    "`{reference}` is the start of {} {what} ids",
                    candidates.len()
                ))
                .cause(format!(
                    "it matches {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ))
                .hint("give more of the id (`outrig ls` lists them)")
            }
            Unmatched::None => Error::new(if reference == LATEST {
                format!("there is no {what} yet")
            } else {
                format!("no {what} `{reference}`")
            })
            .hint(match ids.first() {
                Some(newest) => {
                    format!("`outrig ls` lists them; the newest is {newest} (`{LATEST}` names it)")
                }
                None => "there are no sessions yet".into(),
            }),
        }
    }
}

/// The id and directory of the session `reference` names under `root` (see [`choose`]),
/// following a `--session-dir` link.
pub fn locate(root: &Path, reference: &str) -> Result<(String, PathBuf), crate::error::Error> {
    let ids = ids(root);
    let id = choose(&ids, reference).map_err(|unmatched| {
        unmatched
            .error(reference, "session", &ids)
            .cause(format!("sessions are recorded in `{}`", root.display()))
    })?;
    Ok((id.to_string(), root.join(id)))
}

/// Delete session `id`: its directory, or the linked `--session-dir` and the link.
pub fn remove(root: &Path, id: &str) -> std::io::Result<()> {
    let entry = root.join(id);
    let metadata = std::fs::symlink_metadata(&entry)?;
    if metadata.file_type().is_symlink() {
        if let Ok(target) = std::fs::read_link(&entry) {
            let target = if target.is_absolute() {
                target
            } else {
                root.join(target)
            };
            if target.join(RECORD_FILE).exists() {
                std::fs::remove_dir_all(&target)?;
            }
        }
        std::fs::remove_file(&entry)
    } else {
        std::fs::remove_dir_all(&entry)
    }
}

/// Mark a kept session's sandbox as gone.
pub fn mark_destroyed(root: &Path, id: &str) {
    let dir = root.join(id);
    if let Ok(mut record) = read(&dir)
        && record.status == Status::Kept
    {
        record.status = Status::Finished;
        for container in record.containers.values_mut() {
            container.removed = true;
        }
        let session = Session {
            dir,
            record,
            sources: Sources::system(),
            tool_calls: Default::default(),
        };
        let _ = session.save();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        [
            "20261201T100000-bbbb",
            "20261130T090000-aaaa",
            "20261130T080000-cccc",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn latest_whole_ids_and_unique_prefixes_name_a_session() {
        let ids = ids();
        assert_eq!(choose(&ids, "latest"), Ok("20261201T100000-bbbb"));
        assert_eq!(
            choose(&ids, "20261130T080000-cccc"),
            Ok("20261130T080000-cccc")
        );
        assert_eq!(choose(&ids, "20261201"), Ok("20261201T100000-bbbb"));
        assert_eq!(choose(&ids, "20261130T09"), Ok("20261130T090000-aaaa"));
        assert_eq!(
            choose(&ids, "20261130"),
            Err(Unmatched::Ambiguous(vec![
                "20261130T090000-aaaa".into(),
                "20261130T080000-cccc".into()
            ]))
        );
        assert_eq!(choose(&ids, "2027"), Err(Unmatched::None));
        assert_eq!(choose(&ids, ""), Err(Unmatched::None));
        assert_eq!(choose(&[], "latest"), Err(Unmatched::None));
    }

    #[test]
    fn an_ambiguous_prefix_lists_the_candidates() {
        let ids = ids();
        let error = choose(&ids, "2026113")
            .unwrap_err()
            .error("2026113", "session", &ids);
        assert_eq!(error.message, "`2026113` is the start of 2 session ids");
        assert_eq!(
            error.causes,
            ["it matches 20261130T090000-aaaa, 20261130T080000-cccc"]
        );
        let error = Unmatched::None.error("latest", "session", &[]);
        assert_eq!(error.message, "there is no session yet");
    }

    #[test]
    fn the_images_a_session_used_are_read_typed_or_from_an_older_record() {
        let record = |extra: serde_json::Value| -> Record {
            let mut value = serde_json::json!({
                "format_version": FORMAT_VERSION, "id": "s", "project": "p",
                "project_id": "p1", "status": "finished",
                "desired": {"images": {"tools": {"reference": "localhost/outrig-tools:abc"}}},
            });
            value
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(value).unwrap()
        };
        // Written before outrig recorded them: read from the desired state.
        let older = record(serde_json::json!({}));
        assert_eq!(older.images_used(), ["localhost/outrig-tools:abc"]);
        // Recorded: what the record says, and written back as it was read.
        let newer = record(serde_json::json!({"images_used": ["localhost/outrig-tools:def"]}));
        assert_eq!(newer.images_used(), ["localhost/outrig-tools:def"]);
        let written = serde_json::to_value(&newer).unwrap();
        assert_eq!(written["images_used"][0], "localhost/outrig-tools:def");
        assert!(
            serde_json::to_value(&older)
                .unwrap()
                .get("images_used")
                .is_none()
        );
    }
}
