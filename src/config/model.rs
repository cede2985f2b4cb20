//! The wire types of `outrig.toml`: exactly what a user writes, nothing derived.
//!
//! These types are the single source of truth for three things at once: deserialising the
//! file, the generated JSON Schema (`schema/outrig.schema.json`, via `schemars`), and the
//! hover text editors show (every `///` comment below becomes a schema `description`).
//! Defaults are applied later, in [`crate::config::resolve`]; cross-references and other
//! rules the schema cannot express are checked in [`crate::config::check`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Configuration of outrig: the sandbox images, the MCP servers that run inside them, and
/// the LLM agents that use those servers as tools.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "outrig.toml")]
pub struct ConfigFile {
    /// Project name, used in container names and labels so that several projects on one
    /// machine never touch each other's sandboxes. Lowercase letters, digits and `-`.
    /// Defaults to the name of the directory that holds `outrig.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,

    /// The host directory mounted into every sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,

    /// Sandbox images by name. Each is either built from a Containerfile
    /// (`containerfile`) or an image that already exists locally (`from`). The MCP servers
    /// of an image run inside one container of it per session.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, Image>,

    /// LLM providers by name: where chat completions are requested and with which key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("default" = {}))]
    pub providers: BTreeMap<String, Provider>,

    /// Models by name: a model identifier at a provider, with sampling settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("default" = {}))]
    pub models: BTreeMap<String, Model>,

    /// Agents by name: a model, the image whose MCP servers it may use, and its limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("default" = {}))]
    pub agents: BTreeMap<String, Agent>,

    /// The agent `outrig apply` and `outrig mcp` use when `--agent` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_agent: Option<String>,

    /// Directory where session records are written, relative to `outrig.toml`.
    /// `--session-root` overrides it; without either, `$XDG_DATA_HOME/outrig/sessions`
    /// (usually `~/.local/share/outrig/sessions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_root: Option<String>,

    /// How outrig runs podman.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
}

/// The host directory mounted into every sandbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Workspace {
    /// Host directory, relative to `outrig.toml`. Default `"."`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "."))]
    pub path: Option<String>,

    /// Where the workspace appears inside the sandbox (an absolute path).
    /// Default `"/workspace"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "/workspace"))]
    pub mount: Option<String>,

    /// Whether tools may change files in the workspace. Default `"read-write"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "read-write"))]
    pub access: Option<Access>,
}

/// Whether a mount may be written to from inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Files can be read but not changed.
    ReadOnly,
    /// Files can be read, created, changed and deleted.
    ReadWrite,
}

/// A sandbox image and the MCP servers that run in a container of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Image {
    /// Containerfile (Dockerfile) to build this image from, relative to `outrig.toml`.
    /// The image is tagged `outrig-<name>:<hash>`, where the hash covers the Containerfile,
    /// the build arguments and the build context, so unchanged inputs are never rebuilt.
    /// Give either `containerfile` or `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerfile: Option<String>,

    /// Build context directory, relative to `outrig.toml`. Default: the directory that
    /// holds the Containerfile. `.containerignore` or `.dockerignore` in it are honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,

    /// Build arguments (`ARG` values) passed to the build. Values may reference host
    /// environment variables as `${VAR}`; such values are never written to plans,
    /// logs or session records.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("default" = {}))]
    pub build_args: BTreeMap<String, String>,

    /// Build stage to stop at in a multi-stage Containerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,

    /// An existing local image to use as it is, for example
    /// `"localhost/outrig-base:bookworm"`. Give either `from` or `containerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,

    /// When podman may contact a registry for this image or the images a build starts
    /// from. Default `"never"`: only local images are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "never"))]
    pub pull: Option<PullPolicy>,

    /// Network of the sandbox. `"none"` (the default) gives it no network at all;
    /// `"default"` gives it podman's default network with outbound access. Leave it out
    /// when `egress` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "none"))]
    pub network: Option<NetworkMode>,

    /// The only destinations the sandbox may reach, through a proxy outrig runs for the
    /// session: `"host:port"`, `"*.domain:port"` (the domain and every name under it),
    /// `"IP:port"` or `"CIDR:port"` (IPv6 in brackets). The sandbox has no other route
    /// out and no DNS; its servers get `HTTP_PROXY`/`HTTPS_PROXY`. `outrig apply` proves
    /// the list holds before any server starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1),
        inner(regex(
            pattern = r"^(\*\.)?[A-Za-z0-9_.-]+(/[0-9]{1,3})?:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+(/[0-9]{1,3})?\]:[0-9]{1,5}$"
        ))
    )]
    pub egress: Option<Vec<String>>,

    /// Linux capabilities to add to the sandbox, for example `["NET_BIND_SERVICE"]`.
    /// Each one added widens what a compromised tool can do; `outrig plan` lists it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub cap_add: Vec<String>,

    /// Linux capabilities to drop. Default `["ALL"]`: the sandbox starts with none, and
    /// `cap-add` grants back only what is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ["ALL"]))]
    pub cap_drop: Option<Vec<String>>,

    /// Forbid processes in the sandbox from gaining privileges (setuid binaries, file
    /// capabilities). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub no_new_privileges: Option<bool>,

    /// Mount the image's root filesystem read-only (the workspace, `mounts` and `tmpfs`
    /// keep their own access). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub read_only: Option<bool>,

    /// Most processes the sandbox may run at once. Default `512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 1_000_000), extend("default" = 512))]
    pub pids_limit: Option<u32>,

    /// Memory limit, as podman takes it: a number with an optional unit `k`, `m` or `g`,
    /// for example `"2g"`. Default `"2g"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+[kmgKMG]?$"), extend("default" = "2g"))]
    pub memory: Option<String>,

    /// CPU limit in cores, for example `1.5`. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 1024.0))]
    pub cpus: Option<f64>,

    /// Extra host directories or files to mount into the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub mounts: Vec<Mount>,

    /// Empty in-memory directories to mount, for example `["/tmp"]`. Useful with
    /// `read-only = true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub tmpfs: Vec<String>,

    /// MCP servers that run inside this image's sandbox, by name. Their tools are offered
    /// as `<server>__<tool>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("default" = {}))]
    pub mcp: BTreeMap<String, McpServer>,
}

/// When podman may contact a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Use local images only; fail if one is missing.
    Never,
    /// Pull only images that are not present locally.
    Missing,
    /// Check the registry for a newer image every time.
    Always,
}

/// The network a sandbox is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// No network interface but loopback.
    None,
    /// podman's default network, with outbound access.
    Default,
}

/// An extra host path mounted into the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Mount {
    /// Host path, relative to `outrig.toml`. It must exist.
    pub source: String,

    /// Absolute path inside the sandbox.
    pub target: String,

    /// Whether the sandbox may write to it. Default `"read-only"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "read-only"))]
    pub access: Option<Access>,
}

/// An MCP server started inside the sandbox with `podman exec -i`, speaking MCP over
/// its standard input and output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct McpServer {
    /// The program and its arguments, as run inside the sandbox, for example
    /// `["python3", "-m", "mcp_server_time"]`. No shell is involved.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,

    /// Environment variables for the server. Values may reference host environment
    /// variables as `${VAR}` (write `$$` for a literal `$`); those values are passed
    /// through podman's environment, never on a command line, and never written to
    /// plans, logs or session records.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("default" = {}))]
    pub env: BTreeMap<String, String>,

    /// Working directory inside the sandbox (an absolute path). Default: the workspace
    /// mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,

    /// How long the server may take to start and answer the MCP handshake, for example
    /// `"30s"`. Default `"30s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"), extend("default" = "30s"))]
    pub startup_timeout: Option<String>,

    /// How long one tool call may take before it fails with a timeout error, for example
    /// `"2m"`. Default `"60s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"), extend("default" = "60s"))]
    pub call_timeout: Option<String>,

    /// Largest tool result, in bytes, passed on to a client or agent; a larger one is
    /// truncated with a marker. Default `1048576` (1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 268_435_456), extend("default" = 1_048_576))]
    pub result_max_bytes: Option<u64>,
}

/// An LLM provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Provider {
    /// API style. `"openai"`: any OpenAI-compatible Chat Completions endpoint (OpenAI,
    /// Ollama, vLLM, llama.cpp server, LM Studio, OpenRouter). `"anthropic"`: the Anthropic
    /// Messages API (`POST {base-url}/messages`, `x-api-key`). Default `"openai"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "openai"))]
    pub style: Option<ProviderStyle>,

    /// Base URL of the API, for example `"https://api.openai.com/v1"` or
    /// `"http://127.0.0.1:11434/v1"`.
    #[schemars(regex(pattern = r"^https?://"))]
    pub base_url: String,

    /// API key, only as a reference to a host environment variable: `"${OPENAI_API_KEY}"`.
    /// The key itself never belongs in this file. Omit it for endpoints without keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"))]
    pub api_key: Option<String>,

    /// Extra HTTP headers sent with every request. Values may reference host environment
    /// variables as `${VAR}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("default" = {}))]
    pub headers: BTreeMap<String, String>,

    /// How long one request may take, for example `"120s"`. Default `"120s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"), extend("default" = "120s"))]
    pub request_timeout: Option<String>,

    /// Total time spent retrying a failed request (timeouts, connection errors, 408, 425,
    /// 429, 5xx) before the turn fails, for example `"60s"`. Default `"60s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"), extend("default" = "60s"))]
    pub retry_budget: Option<String>,

    /// Ask for streamed replies (server-sent events), so the answer is printed as it is
    /// written. Turn off for endpoints that do not stream. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub stream: Option<bool>,
}

/// The API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderStyle {
    /// OpenAI-compatible Chat Completions (`POST {base-url}/chat/completions`).
    Openai,
    /// The Anthropic Messages API (`POST {base-url}/messages`).
    Anthropic,
}

/// A model at a provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Model {
    /// Name of a provider in `[providers]`.
    pub provider: String,

    /// The model identifier the provider knows, for example `"gpt-4o-mini"` or
    /// `"qwen2.5-coder:7b"`.
    #[schemars(length(min = 1))]
    pub identifier: String,

    /// Sampling temperature. Default: the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,

    /// Most tokens the model may generate in one reply. Default: the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_tokens: Option<u32>,

    /// Models to continue the turn on, in order, when this one's provider is exhausted
    /// (its retry budget spent, or a refusal that is not the request's fault: 401, 403,
    /// 404). Names of other `[models]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub fallback: Vec<String>,
}

/// An agent: a model that works with the tools of one sandbox image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Agent {
    /// Name of a model in `[models]`.
    pub model: String,

    /// Name of an image in `[images]`; the agent's tools are the MCP servers of that
    /// image, running in its sandbox.
    pub image: String,

    /// The system prompt that starts every conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,

    /// Which tools the agent may use, as `<server>__<tool>` names or globs (`*` matches
    /// any run of characters, `?` one character), for example
    /// `["fs__*", "time__get_current_time"]`. Default: every tool of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = ["*"]))]
    pub tools: Option<Vec<String>>,

    /// Most tool calls the agent may make in one turn; the turn then ends with the
    /// remaining calls answered as not executed. Default `50`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000), extend("default" = 50))]
    pub tool_call_max: Option<u32>,

    /// Largest tool result, in bytes, shown to the model; a larger one is cut at a
    /// character boundary with a marker. Default `20000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 256, max = 16_777_216), extend("default" = 20_000))]
    pub tool_result_max: Option<u32>,
}

/// How outrig runs podman.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Engine {
    /// The podman program. Default `"podman"`; the `OUTRIG_PODMAN` environment variable
    /// overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("default" = "podman"))]
    pub podman: Option<String>,

    /// Arguments placed before every podman subcommand, for example
    /// `["--connection", "build-box"]` to use a remote podman. Site settings such as
    /// the OCI runtime or ulimits belong in `containers.conf`, not here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub global_args: Vec<String>,

    /// The image the egress proxy (Squid) and its probes run from, for images with
    /// `egress`. Default `"localhost/outrig-proxy:bookworm"`, which
    /// `scripts/setup-podman.sh` builds from the Debian mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("default" = "localhost/outrig-proxy:bookworm"))]
    pub proxy_image: Option<String>,
}
