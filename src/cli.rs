//! Command-line types (clap derive). No logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run LLM agents whose tools (MCP servers) are sandboxed in podman containers,
/// described declaratively in outrig.toml.
#[derive(Debug, Parser)]
#[command(
    name = "outrig",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit status: 0 success, 1 error (invalid config, bad flags, podman \
failure), 2 changes pending (plan --detailed-exitcode).\nDocumentation: doc/README.md in \
outrig's source (start with doc/from-zero.md); `outrig man` prints the manual page.\nShell \
completions: `outrig completions --help`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file to use instead of the outrig.toml found by walking up from the current
    /// directory (a directory holding outrig.toml also works)
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "PATH",
        env = "OUTRIG_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Print more detail: every plan step, and each server's whole podman command
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour. `auto` uses it on a terminal unless NO_COLOR is set
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create outrig.toml and a sandbox Containerfile in a directory
    Init(InitArgs),
    /// Check outrig.toml: TOML syntax, the JSON Schema, and semantic rules
    Validate(ValidateArgs),
    /// Print the JSON Schema of outrig.toml (for editors and CI)
    Schema(SchemaArgs),
    /// Show what `outrig apply` would build, start, expose and remove, and why
    Plan(PlanArgs),
    /// Show a plan saved with `outrig plan --out`, or the plan a session carried out
    Show(ShowArgs),
    /// Carry out the plan: build images, start the sandbox and its MCP servers, record a
    /// session, tear down (unless --keep)
    Apply(ApplyArgs),
    /// Serve the sandbox's MCP tools as one MCP server on stdio, for Claude Code, Codex,
    /// Cursor, VS Code or any MCP client
    Mcp(McpArgs),
    /// List recorded sessions, newest first
    Ls(LsArgs),
    /// Show a session's logs (build output, server stderr)
    Logs(LogsArgs),
    /// Delete a session's record
    Discard(DiscardArgs),
    /// Remove this project's kept sandboxes
    Destroy(DestroyArgs),
    /// Remove this project's stray containers whose session is gone, old session records
    /// and (with --images) unused images
    Clean(CleanArgs),
    /// Pin what runs in outrig.lock: start every image's servers (building what is not
    /// current), record each tool's whole definition and each image's id, tear down
    Lock(LockCommandArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completions(CompletionsArgs),
    /// Print outrig's manual page (roff), or write one page per command into a directory
    Man(ManArgs),
    /// Export the sandbox and its gateway for another platform: Kubernetes manifests
    #[command(subcommand)]
    Export(ExportCommand),
    /// Start one MCP server in a pod's own container, as `podman exec` would in a sandbox
    /// (run by `outrig mcp --in-pod`)
    #[command(hide = true)]
    ExecServer(ExecServerArgs),
}

#[derive(Debug, Args)]
pub struct ExecServerArgs {
    /// The server's working directory
    #[arg(long, value_name = "DIR")]
    pub workdir: PathBuf,

    /// NAME=VALUE, or NAME alone for the value of outrig's own variable (repeatable)
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,

    /// The server's command
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Kubernetes manifests of one image's sandbox and its MCP gateway: a Namespace, the
    /// pod (or an agent-sandbox SandboxTemplate), its Service, ConfigMaps, NetworkPolicies
    /// and egress proxy; the Secrets to create are listed, never written
    Kube(KubeArgs),
}

#[derive(Debug, Args)]
pub struct KubeArgs {
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Write one file per resource into DIR (and `kustomization.yaml`, `SECRETS.md`)
    /// instead of every manifest to stdout
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// A plain Pod, or an agent-sandbox SandboxTemplate (agents.x-k8s.io/v1beta1)
    #[arg(long, value_enum, default_value_t = KubeFormat::Pod)]
    pub format: KubeFormat,

    /// With `--format agent-sandbox`: a SandboxWarmPool of N pods kept ready
    #[arg(long, value_name = "N")]
    pub warm_pool: Option<u32>,

    /// The pod's RuntimeClass (`gvisor`, `kata`, ...)
    #[arg(long, value_name = "NAME")]
    pub runtime_class: Option<String>,

    /// The namespace (default: `outrig-<project>`)
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,

    /// The workspace: a PersistentVolumeClaim of this size (default), or `git=URL` to clone
    /// URL into an emptyDir before the gateway starts
    #[arg(long, value_name = "SIZE|git=URL", default_value = "1Gi")]
    pub workspace: String,

    /// The image holding the outrig binary the pod's gateway runs (at /usr/local/bin/outrig)
    #[arg(long, value_name = "IMAGE")]
    pub gateway_image: Option<String>,
}

/// Where a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanTarget {
    Podman,
    Kube,
}

/// What `outrig export kube` writes the sandbox as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KubeFormat {
    Pod,
    AgentSandbox,
}

#[derive(Debug, Args)]
pub struct LockCommandArgs {
    /// Directory of session records (default: config `session-root`, else
    /// $XDG_DATA_HOME/outrig/sessions)
    #[arg(long, value_name = "DIR", env = "OUTRIG_SESSION_ROOT")]
    pub session_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "Install, for example:\n  \
bash:       outrig completions bash > ~/.local/share/bash-completion/completions/outrig\n  \
zsh:        outrig completions zsh > ~/.zfunc/_outrig   (with fpath+=~/.zfunc before compinit)\n  \
fish:       outrig completions fish > ~/.config/fish/completions/outrig.fish\n  \
powershell: outrig completions powershell | Out-String | Invoke-Expression   (in $PROFILE)")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells `outrig completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write outrig.1 and one page per command (outrig-plan.1, ...) into DIR instead of
    /// printing outrig(1)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SessionRootArgs {
    /// Directory of session records (default: config `session-root`, else
    /// $XDG_DATA_HOME/outrig/sessions)
    #[arg(long, value_name = "DIR", env = "OUTRIG_SESSION_ROOT")]
    pub session_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print the list as JSON on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub root: SessionRootArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Session: `latest`, an id as `outrig ls` shows it, or a unique prefix of one
    pub session: String,

    /// Only this server's stderr (`time` or `tools.time`), or `egress`: every connection
    /// the egress proxy allowed or refused (JSON lines); default: every log
    pub server: Option<String>,

    /// Keep printing as the logs grow, until the session ends
    #[arg(long, short = 'f')]
    pub follow: bool,

    #[command(flatten)]
    pub root: SessionRootArgs,
}

#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// Session: `latest`, an id as `outrig ls` shows it, or a unique prefix of one
    pub session: String,

    #[command(flatten)]
    pub root: SessionRootArgs,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Remove a sandbox even while an `outrig mcp --attach` gateway serves from it
    #[arg(long)]
    pub force: bool,

    /// List what would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the removal plan as JSON on stdout (with --dry-run, only that)
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub root: SessionRootArgs,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Remove records of sessions that ended longer ago than this (`30d`, `12h`)
    #[arg(long, value_name = "AGE", default_value = "30d")]
    pub older_than: String,

    /// Act on every project's containers and records, not only this project's
    #[arg(long)]
    pub all_projects: bool,

    /// List what would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the removal plan as JSON on stdout (with --dry-run, only that)
    #[arg(long)]
    pub json: bool,

    /// Also remove this project's images that neither the config nor a kept, running or
    /// recent (younger than --older-than) session uses
    #[arg(long, conflicts_with = "all_projects")]
    pub images: bool,

    #[command(flatten)]
    pub root: SessionRootArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `outrig plan --out`: run only if a plan made now equals it, step
    /// for step (otherwise refused, naming what differs)
    #[arg(value_name = "PLANFILE")]
    pub plan_file: Option<PathBuf>,

    /// Apply without asking (needed when stdin is not a terminal)
    #[arg(long)]
    pub auto_approve: bool,

    /// Leave the sandbox running after the servers answered
    #[arg(long)]
    pub keep: bool,

    /// Run the agent once on TEXT: the answer alone on stdout, progress on stderr (a prompt
    /// piped on stdin does the same; on a terminal, without it, a REPL starts)
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,

    /// Agent to apply (default: `default-agent`; without one, every image with servers)
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,

    /// Ask the model for whole replies instead of streamed ones (the answer is then
    /// printed when it is complete); `stream = false` does the same per provider
    #[arg(long)]
    pub no_stream: bool,

    /// Directory of session records (default: config `session-root`, else
    /// $XDG_DATA_HOME/outrig/sessions)
    #[arg(long, value_name = "DIR", env = "OUTRIG_SESSION_ROOT")]
    pub session_root: Option<PathBuf>,

    /// Record this session in DIR (empty or new), linked from the session root
    #[arg(long, value_name = "DIR")]
    pub session_dir: Option<PathBuf>,

    #[command(flatten)]
    pub lock: LockArgs,
}

/// What a gateway serves (`outrig mcp`, and the pod `outrig export kube` writes).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve this agent's image, limited to the agent's `tools` allow-list (default:
    /// `default-agent`; without one, the only image that has servers)
    #[arg(long, value_name = "NAME", conflicts_with = "image")]
    pub agent: Option<String>,

    /// Serve every server of this image
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,

    /// Only publish tools matching GLOB (`<server>__<tool>` with `*` and `?`; repeatable,
    /// narrows the agent's allow-list further)
    #[arg(long = "tools", value_name = "GLOB")]
    pub tools: Vec<String>,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Start the servers in a sandbox kept by `outrig apply --keep` instead of a new
    /// sandbox; it stays up afterwards. `latest` (the newest kept session of this project),
    /// a session id or unique prefix, or the container's name
    #[arg(long, value_name = "SESSION|CONTAINER")]
    pub attach: Option<String>,

    /// Build or pull images that are not current, instead of refusing to start
    #[arg(long)]
    pub build: bool,

    /// Print the snippet that registers this server with CLIENT, and exit
    #[arg(long, value_enum, value_name = "CLIENT")]
    pub print_config: Option<McpClient>,

    /// Serve over MCP's Streamable HTTP on ADDRESS:PORT (path /mcp) instead of stdio, to
    /// any number of clients; port 0 picks a free one. Every request needs the bearer
    /// token printed at start (or the one in --token-env)
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub listen: Option<std::net::SocketAddr>,

    /// Take the HTTP bearer token from the variable VAR instead of generating one (it is
    /// then neither printed nor stored)
    #[arg(long, value_name = "VAR", requires = "listen")]
    pub token_env: Option<String>,

    /// Let --listen bind an address other machines can reach
    #[arg(long, requires = "listen")]
    pub allow_remote: bool,

    /// Also accept requests whose Host header names HOST (DNS rebinding protection
    /// accepts only the bound address and loopback names; repeatable)
    #[arg(long, value_name = "HOST", requires = "listen")]
    pub allow_host: Vec<String>,

    /// Also accept browser requests from ORIGIN, e.g. https://app.example (repeatable)
    #[arg(long, value_name = "ORIGIN", requires = "listen")]
    pub allow_origin: Vec<String>,

    /// Publish this server's tools and prompts under their own names, without the
    /// `<server>__` prefix (for clients or test suites that expect exact names)
    #[arg(long, value_name = "SERVER")]
    pub unprefixed: Option<String>,

    /// Serve as the gateway of a pod exported with `outrig export kube`: the pod is the
    /// sandbox, so the servers run as processes of this container, without podman
    #[arg(long, requires = "listen", conflicts_with_all = ["attach", "build"])]
    pub in_pod: bool,

    /// Directory of session records (default: config `session-root`, else
    /// $XDG_DATA_HOME/outrig/sessions)
    #[arg(long, value_name = "DIR", env = "OUTRIG_SESSION_ROOT")]
    pub session_root: Option<PathBuf>,

    /// Record this session in DIR (empty or new), linked from the session root
    #[arg(long, value_name = "DIR")]
    pub session_dir: Option<PathBuf>,

    #[command(flatten)]
    pub lock: LockArgs,
}

/// How `apply` and `mcp` treat `outrig.lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Refuse what differs from outrig.lock (for CI): images that are not the pinned ones
    /// stop everything; tools whose definitions are not pinned are not served (`apply`
    /// fails before the agent runs)
    #[arg(
        long,
        env = "OUTRIG_LOCKED",
        value_parser = clap::builder::BoolishValueParser::new(),
        conflicts_with = "update_lock"
    )]
    pub locked: bool,

    /// Accept what runs: re-pin the images and tool definitions of this session in
    /// outrig.lock
    #[arg(long)]
    pub update_lock: bool,
}

/// MCP clients `outrig mcp --print-config` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum McpClient {
    /// Claude Code: `.mcp.json` at the project root
    ClaudeCode,
    /// Codex: `~/.codex/config.toml`
    Codex,
    /// Cursor: `.cursor/mcp.json`
    Cursor,
    /// Gemini CLI: `.gemini/settings.json`
    Gemini,
    /// VS Code: `.vscode/mcp.json`
    Vscode,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Agent to plan for (default: `default-agent`; without one, every image with servers)
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,

    /// Print the plan as versioned JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// Save the plan to FILE for `outrig apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// What to plan for: this machine's podman, or Kubernetes (the resources `outrig
    /// export kube` writes, with the same security section)
    #[arg(long, value_enum, default_value_t = PlanTarget::Podman)]
    pub target: PlanTarget,

    /// Directory of session records (default: config `session-root`, else
    /// $XDG_DATA_HOME/outrig/sessions)
    #[arg(long, value_name = "DIR", env = "OUTRIG_SESSION_ROOT")]
    pub session_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan saved with `outrig plan --out`, or a session (`latest`, an id or a unique
    /// prefix) whose plan to show; an existing file, or a path with `/` or ending in
    /// `.json`, is read as a plan
    #[arg(value_name = "PLANFILE|SESSION")]
    pub target: String,

    #[command(flatten)]
    pub root: SessionRootArgs,

    /// Print the plan as versioned JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Output format; `json` prints the diagnostics as data on stdout
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema: the config file, or the JSON plan format
    #[arg(value_enum, default_value_t = SchemaKind::Config)]
    pub kind: SchemaKind,

    /// Write the schema to this file instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// outrig.toml
    Config,
    /// the output of `outrig plan --json` and `--out`
    Plan,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to initialise (default: the current directory)
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Overwrite files that already exist
    #[arg(long)]
    pub force: bool,

    /// Project name written to outrig.toml (default: the directory's name, lowercased, other
    /// characters as `-`)
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,

    /// Image the sandbox Containerfile starts FROM. An image outside `localhost/` gets
    /// `pull = "missing"` so podman may fetch it once
    #[arg(
        long,
        value_name = "REF",
        default_value = "localhost/outrig-base:bookworm"
    )]
    pub base_image: String,

    /// Sandbox network: `none` (no network at all) or `default` (outbound access)
    #[arg(long, value_enum, default_value_t = InitNetwork::None)]
    pub network: InitNetwork,

    /// Whether tools may change files in the workspace
    #[arg(long, value_enum, default_value_t = InitAccess::ReadWrite)]
    pub workspace_access: InitAccess,

    /// Base URL of an OpenAI-compatible Chat Completions API
    #[arg(long, value_name = "URL", default_value = "https://api.openai.com/v1")]
    pub provider_url: String,

    /// Environment variable that holds the API key (`none` for endpoints without keys)
    #[arg(long, value_name = "VAR", default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,

    /// Model identifier at the provider
    #[arg(long, value_name = "ID", default_value = "gpt-4o-mini")]
    pub model: String,

    /// A CA bundle the build must trust, for networks that inspect TLS (pip or apt fail
    /// with "self-signed certificate in certificate chain"): copied next to the
    /// Containerfile, which installs it before downloading. Usually
    /// /etc/ssl/certs/ca-certificates.crt
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitNetwork {
    None,
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitAccess {
    ReadOnly,
    ReadWrite,
}
