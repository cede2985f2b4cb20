//! From a checked [`ConfigFile`] to the [`Config`] the rest of outrig works with: defaults
//! applied, paths made absolute, durations parsed. Only called on a file that passed every
//! check, so it does not report problems of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{Access, ConfigFile, NetworkMode, PullPolicy};

/// A whole, valid configuration with every default filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, absolute.
    pub path: PathBuf,
    /// The directory holding the config file: the project root.
    pub root: PathBuf,
    pub project: String,
    pub workspace: Workspace,
    pub images: BTreeMap<String, Image>,
    pub providers: BTreeMap<String, Provider>,
    pub models: BTreeMap<String, Model>,
    pub agents: BTreeMap<String, Agent>,
    pub default_agent: Option<String>,
    pub session_root: Option<PathBuf>,
    pub engine: Engine,
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub host_path: PathBuf,
    pub mount: String,
    pub access: Access,
}

#[derive(Debug, Clone)]
pub enum ImageSource {
    Build {
        containerfile: PathBuf,
        context: PathBuf,
        build_args: BTreeMap<String, String>,
        target: Option<String>,
    },
    Existing {
        reference: String,
    },
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub source: ImageSource,
    pub pull: PullPolicy,
    pub network: NetworkMode,
    /// The only destinations the sandbox may reach, through the session's proxy; empty
    /// when `network` decides.
    pub egress: Vec<crate::egress::Destination>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub read_only: bool,
    pub pids_limit: u32,
    pub memory: String,
    pub cpus: Option<f64>,
    pub mounts: Vec<Mount>,
    pub tmpfs: Vec<String>,
    pub servers: BTreeMap<String, McpServer>,
}

#[derive(Debug, Clone)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub access: Access,
}

#[derive(Debug, Clone)]
pub struct McpServer {
    pub name: String,
    pub command: Vec<String>,
    /// Values are templates; `${VAR}` is resolved only when the server starts.
    pub env: BTreeMap<String, String>,
    pub workdir: String,
    pub startup_timeout: Duration,
    pub call_timeout: Duration,
    pub result_max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub base_url: String,
    /// The environment variable holding the key, if any.
    pub api_key_variable: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub request_timeout: Duration,
    pub retry_budget: Duration,
    pub style: super::model::ProviderStyle,
    /// Ask for streamed replies.
    pub stream: bool,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub provider: String,
    pub identifier: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Models the turn continues on when this one's provider is exhausted.
    pub fallback: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub model: String,
    pub image: String,
    pub system_prompt: Option<String>,
    /// `None`: every tool of the image.
    pub tools: Option<Vec<String>>,
    pub tool_call_max: u32,
    pub tool_result_max: u32,
}

#[derive(Debug, Clone)]
pub struct Engine {
    pub podman: String,
    pub global_args: Vec<String>,
    /// The image egress proxies and their probes run from.
    pub proxy_image: String,
}

pub const DEFAULT_PROXY_IMAGE: &str = "localhost/outrig-proxy:bookworm";

pub const DEFAULT_WORKSPACE_MOUNT: &str = "/workspace";
pub const DEFAULT_PIDS_LIMIT: u32 = 512;
pub const DEFAULT_MEMORY: &str = "2g";
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_RESULT_MAX_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(60);
pub const DEFAULT_TOOL_CALL_MAX: u32 = 50;
pub const DEFAULT_TOOL_RESULT_MAX: u32 = 20_000;

/// Resolve a checked file. `config_path` must be absolute.
pub fn resolve(file: &ConfigFile, config_path: &Path) -> Config {
    let root = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let workspace = file.workspace.clone().unwrap_or_default();
    let workspace_mount = workspace
        .mount
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKSPACE_MOUNT.into());
    let duration = |value: &Option<String>, default: Duration| {
        value.as_deref().and_then(parse_duration).unwrap_or(default)
    };
    let images = file
        .images
        .iter()
        .map(|(name, image)| {
            let source = match (&image.containerfile, &image.from) {
                (Some(containerfile), _) => {
                    let containerfile = crate::fs::clean_path(&root.join(containerfile));
                    let context = match &image.context {
                        Some(context) => crate::fs::clean_path(&root.join(context)),
                        None => containerfile.parent().unwrap_or(&root).to_path_buf(),
                    };
                    ImageSource::Build {
                        containerfile,
                        context,
                        build_args: image.build_args.clone(),
                        target: image.target.clone(),
                    }
                }
                (None, from) => ImageSource::Existing {
                    reference: from.clone().unwrap_or_default(),
                },
            };
            let servers = image
                .mcp
                .iter()
                .map(|(server_name, server)| {
                    let resolved = McpServer {
                        name: server_name.clone(),
                        command: server.command.clone(),
                        env: server.env.clone(),
                        workdir: server
                            .workdir
                            .clone()
                            .unwrap_or_else(|| workspace_mount.clone()),
                        startup_timeout: duration(&server.startup_timeout, DEFAULT_STARTUP_TIMEOUT),
                        call_timeout: duration(&server.call_timeout, DEFAULT_CALL_TIMEOUT),
                        result_max_bytes: server
                            .result_max_bytes
                            .unwrap_or(DEFAULT_RESULT_MAX_BYTES),
                    };
                    (server_name.clone(), resolved)
                })
                .collect();
            let resolved = Image {
                name: name.clone(),
                source,
                pull: image.pull.unwrap_or(PullPolicy::Never),
                network: image.network.unwrap_or(NetworkMode::None),
                // Checked by validation; an entry that does not parse never gets here.
                egress: image
                    .egress
                    .iter()
                    .flatten()
                    .filter_map(|entry| entry.parse().ok())
                    .collect(),
                cap_add: image
                    .cap_add
                    .iter()
                    .map(|c| canonical_capability(c))
                    .collect(),
                cap_drop: image
                    .cap_drop
                    .clone()
                    .unwrap_or_else(|| vec!["ALL".into()])
                    .iter()
                    .map(|c| canonical_capability(c))
                    .collect(),
                no_new_privileges: image.no_new_privileges.unwrap_or(true),
                read_only: image.read_only.unwrap_or(false),
                pids_limit: image.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT),
                memory: image
                    .memory
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MEMORY.into()),
                cpus: image.cpus,
                mounts: image
                    .mounts
                    .iter()
                    .map(|m| Mount {
                        source: crate::fs::clean_path(&root.join(&m.source)),
                        target: m.target.clone(),
                        access: m.access.unwrap_or(Access::ReadOnly),
                    })
                    .collect(),
                tmpfs: image.tmpfs.clone(),
                servers,
            };
            (name.clone(), resolved)
        })
        .collect();
    let providers = file
        .providers
        .iter()
        .map(|(name, p)| {
            let resolved = Provider {
                name: name.clone(),
                base_url: p.base_url.trim_end_matches('/').to_string(),
                api_key_variable: p.api_key.as_deref().and_then(crate::secret::sole_reference),
                headers: p.headers.clone(),
                request_timeout: duration(&p.request_timeout, DEFAULT_REQUEST_TIMEOUT),
                retry_budget: duration(&p.retry_budget, DEFAULT_RETRY_BUDGET),
                style: p.style.unwrap_or(super::model::ProviderStyle::Openai),
                stream: p.stream.unwrap_or(true),
            };
            (name.clone(), resolved)
        })
        .collect();
    let models = file
        .models
        .iter()
        .map(|(name, m)| {
            let resolved = Model {
                name: name.clone(),
                provider: m.provider.clone(),
                identifier: m.identifier.clone(),
                temperature: m.temperature,
                max_tokens: m.max_tokens,
                fallback: m.fallback.clone(),
            };
            (name.clone(), resolved)
        })
        .collect();
    let agents = file
        .agents
        .iter()
        .map(|(name, a)| {
            let resolved = Agent {
                name: name.clone(),
                model: a.model.clone(),
                image: a.image.clone(),
                system_prompt: a.system_prompt.clone(),
                tools: a.tools.clone(),
                tool_call_max: a.tool_call_max.unwrap_or(DEFAULT_TOOL_CALL_MAX),
                tool_result_max: a.tool_result_max.unwrap_or(DEFAULT_TOOL_RESULT_MAX),
            };
            (name.clone(), resolved)
        })
        .collect();
    let engine = file.engine.clone().unwrap_or_default();
    Config {
        path: config_path.to_path_buf(),
        project: file
            .project
            .clone()
            .unwrap_or_else(|| default_project_name(&root)),
        workspace: Workspace {
            host_path: crate::fs::clean_path(&root.join(workspace.path.as_deref().unwrap_or("."))),
            mount: workspace_mount,
            access: workspace.access.unwrap_or(Access::ReadWrite),
        },
        images,
        providers,
        models,
        agents,
        default_agent: file.default_agent.clone(),
        session_root: file.session_root.as_ref().map(|s| root.join(s)),
        engine: Engine {
            podman: engine.podman.unwrap_or_else(|| "podman".into()),
            global_args: engine.global_args,
            proxy_image: engine
                .proxy_image
                .unwrap_or_else(|| DEFAULT_PROXY_IMAGE.into()),
        },
        root,
    }
}

/// The project name derived from the directory name: lowercased, other characters as `-`.
pub fn default_project_name(root: &Path) -> String {
    let raw = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name: String = name.trim_matches('-').chars().take(40).collect();
    let name = name.trim_end_matches('-').to_string();
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name
    } else {
        format!("p-{name}").trim_end_matches('-').to_string()
    }
}

fn canonical_capability(cap: &str) -> String {
    let upper = cap.to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
}

/// `"30s"`, `"250ms"`, `"2m"`, `"1h"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => number,
        "s" => number.checked_mul(1000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

/// `"512m"` → bytes. Units `k`, `m`, `g` (either case) are powers of 1024, as in podman.
pub fn parse_memory(text: &str) -> Option<u64> {
    let (number, multiplier) = match text.chars().last()?.to_ascii_lowercase() {
        'k' => (&text[..text.len() - 1], 1024),
        'm' => (&text[..text.len() - 1], 1024 * 1024),
        'g' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory("2g"), Some(2 << 30));
        assert_eq!(parse_memory("512M"), Some(512 << 20));
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn project_names() {
        assert_eq!(default_project_name(Path::new("/src/My Repo")), "my-repo");
        assert_eq!(default_project_name(Path::new("/src/2fast")), "p-2fast");
        assert_eq!(default_project_name(Path::new("/")), "p");
    }
}
