//! The desired state: what the config asks for, as resources with stable addresses and
//! content identities. Reading Containerfiles and hashing build contexts happens here;
//! comparing happens in [`super::diff`].

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{self, IgnoreRules};
use crate::config::model::{Access, NetworkMode, PullPolicy};
use crate::config::resolve::{Config, ImageSource};
use crate::digest::short_hash;
use crate::egress::Destination;
use crate::error::Error;
pub use crate::podman::engine::EngineFacts;
pub use crate::podman::runtime::Transport;
pub use crate::secret::Value;
use crate::secret::{FingerprintKey, Resolver};

/// Everything a session of this project will build and run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Desired {
    pub project: String,
    /// Project name plus a hash of its directory: what container labels are matched on.
    pub project_id: String,
    pub agent: Option<String>,
    pub images: BTreeMap<String, ImageSpec>,
    /// Sandboxes by image name.
    pub sandboxes: BTreeMap<String, SandboxSpec>,
    /// Servers by `<image>.<server>`.
    pub servers: BTreeMap<String, ServerSpec>,
    pub agents: BTreeMap<String, AgentSpec>,
    /// The engine the session runs on, as it reported itself.
    pub engine: EngineFacts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ImageSpec {
    pub name: String,
    /// The reference `apply` uses: `localhost/outrig-<name>:<hash>` for built images, the
    /// configured reference for existing ones.
    pub reference: String,
    pub pull: PullPolicy,
    pub build: Option<BuildSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct BuildSpec {
    /// Containerfile path relative to the project root.
    pub containerfile: String,
    pub containerfile_text: String,
    /// Context directory relative to the project root.
    pub context: String,
    pub ignore_file: Option<String>,
    pub context_files: usize,
    pub context_bytes: u64,
    pub build_args: BTreeMap<String, Value>,
    pub target: Option<String>,
    /// Hashes of each input; together they make the tag.
    pub containerfile_hash: String,
    pub context_hash: String,
    pub args_hash: String,
    /// Per-file fingerprints of the context, to name what changed. Kept out of plans and
    /// records (it can list thousands of files); the manifest cache holds it instead.
    #[serde(skip)]
    #[schemars(skip)]
    pub context_manifest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SandboxSpec {
    pub image: String,
    pub network: Network,
    pub workspace_host: String,
    pub workspace_mount: String,
    pub workspace_access: Access,
    pub mounts: Vec<MountSpec>,
    pub tmpfs: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub read_only: bool,
    pub pids_limit: u32,
    pub memory: String,
    pub cpus: Option<f64>,
    /// Whether podman holds the sandbox to `pids_limit` and `memory` (and `cpus`); when
    /// not, they are not passed and the plan says so.
    pub limits_enforced: bool,
    /// Who root in the sandbox is on the host.
    pub user_namespace: UserNamespace,
    /// Hash of the run settings above and of the image reference, stored as a container
    /// label.
    pub config_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct MountSpec {
    pub source: String,
    pub target: String,
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ServerSpec {
    pub image: String,
    pub name: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, Value>,
    pub workdir: String,
    pub startup_timeout_ms: u64,
    pub call_timeout_ms: u64,
    pub result_max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct AgentSpec {
    pub name: String,
    pub image: String,
    pub model: String,
    pub identifier: String,
    pub provider: String,
    pub base_url: String,
    /// The variable holding the key, as `${VAR}`; never the key.
    pub api_key: Option<String>,
    pub tools: Option<Vec<String>>,
    pub tool_call_max: u32,
    pub tool_result_max: u32,
}

/// How a sandbox reaches the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Network {
    /// Loopback only (`--network=none`).
    None,
    /// podman's default network, anywhere (`--network=podman`).
    Default,
    /// An internal network with no route out and no DNS; the session's proxy, on that
    /// network and on podman's default one, lets through only these destinations.
    Egress {
        destinations: Vec<Destination>,
        /// The image the proxy and the probes run from.
        proxy_image: String,
    },
}

impl Network {
    pub fn destinations(&self) -> &[Destination] {
        match self {
            Network::Egress { destinations, .. } => destinations,
            _ => &[],
        }
    }
}

/// Who root in a sandbox is on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum UserNamespace {
    /// Rootless podman: the sandbox's root is the user who runs podman, and files a tool
    /// writes belong to them (`--userns=keep-id`).
    KeepId,
    /// Rootful podman: root in the sandbox is the workspace's owner on the host, the one id
    /// mapped (`--uidmap 0:UID:1 --gidmap 0:GID:1`), so files a tool writes belong to the
    /// owner and the sandbox holds no host privilege.
    Owner { uid: u32, gid: u32 },
    /// Rootful podman: root in the sandbox is an unprivileged id from a range podman gives
    /// this sandbox alone (`--userns=auto`); it can read the workspace, not write it.
    Auto,
    /// Rootful podman: root in the sandbox is root on the host.
    HostRoot { why: HostRootWhy },
}

/// Why a rootful sandbox runs as host root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostRootWhy {
    /// The workspace is root's and mounted read-write: a tool's writes must be root's.
    WorkspaceOwnedByRoot,
    /// `/etc/subuid` gives the `containers` user no range for `--userns=auto`.
    NoSubordinateIds,
}

impl UserNamespace {
    /// The mode for a sandbox whose workspace is owned by `owner` (uid, gid), mounted with
    /// `access`, on `engine`.
    pub fn choose(engine: &EngineFacts, owner: Option<(u32, u32)>, access: Access) -> Self {
        if engine.rootless {
            return UserNamespace::KeepId;
        }
        match owner {
            Some((uid, gid)) if uid != 0 => UserNamespace::Owner { uid, gid },
            _ if access == Access::ReadWrite => UserNamespace::HostRoot {
                why: HostRootWhy::WorkspaceOwnedByRoot,
            },
            _ if engine.auto_userns => UserNamespace::Auto,
            _ => UserNamespace::HostRoot {
                why: HostRootWhy::NoSubordinateIds,
            },
        }
    }

    /// podman's arguments for it.
    pub fn args(self) -> Vec<String> {
        match self {
            UserNamespace::KeepId => vec!["--userns=keep-id".into()],
            UserNamespace::Owner { uid, gid } => {
                vec![format!("--uidmap=0:{uid}:1"), format!("--gidmap=0:{gid}:1")]
            }
            UserNamespace::Auto => vec!["--userns=auto".into()],
            UserNamespace::HostRoot { .. } => Vec::new(),
        }
    }
}

/// What the desired state depends on besides the config.
pub struct Inputs<'a> {
    /// Look up a host environment variable (injected for tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The key secret fingerprints are made with.
    pub key: &'a FingerprintKey,
    /// What the engine is and can do (chooses the user-namespace mode, the limits passed,
    /// how servers' stdio travel); asked when first needed, so that podman can answer
    /// while build contexts are hashed.
    pub engine: &'a dyn Fn() -> Result<EngineFacts, Error>,
    /// Threads for hashing build contexts.
    pub hash_threads: usize,
}

/// Which part of the config a plan covers.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The named agent; without a name the default agent, or without one every image
    /// that has servers.
    Agent(Option<&'a str>),
    /// One image and its servers, no agent.
    Image(&'a str),
    /// Every image that has servers, no agent (`outrig lock`).
    Every,
}

/// The agent and images a target covers.
pub fn select<'c>(
    config: &'c Config,
    target: Target<'_>,
) -> Result<(Option<String>, Vec<&'c str>), Error> {
    let agent = match target {
        Target::Agent(agent) => agent,
        Target::Every => return Ok((None, with_servers(config))),
        Target::Image(name) => {
            let Some((found, _)) = config.images.get_key_value(name) else {
                let known: Vec<String> = config.images.keys().cloned().collect();
                return Err(Error::new(format!("no image named `{name}`")).hint(
                    match crate::config::suggest::did_you_mean(name, &known) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("images: {}", known.join(", ")),
                    },
                ));
            };
            return Ok((None, vec![found.as_str()]));
        }
    };
    let agent = agent
        .map(str::to_string)
        .or_else(|| config.default_agent.clone());
    match agent {
        Some(name) => {
            let Some(found) = config.agents.get(&name) else {
                let known: Vec<String> = config.agents.keys().cloned().collect();
                return Err(Error::new(format!("no agent named `{name}`")).hint(
                    match crate::config::suggest::did_you_mean(&name, &known) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "agents: {}",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    },
                ));
            };
            Ok((Some(name), vec![found.image.as_str()]))
        }
        None => Ok((None, with_servers(config))),
    }
}

/// The images that have servers.
fn with_servers(config: &Config) -> Vec<&str> {
    config
        .images
        .iter()
        .filter(|(_, image)| !image.servers.is_empty())
        .map(|(name, _)| name.as_str())
        .collect()
}

/// Compute the desired state for `agent` (or the default agent, or every image with
/// servers).
pub fn desired(config: &Config, target: Target<'_>, inputs: &Inputs) -> Result<Desired, Error> {
    let (agent, images) = select(config, target)?;
    let mut resolver = Resolver::new(inputs.env, inputs.key);
    let relative = |path: &Path| {
        path.strip_prefix(&config.root)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    ".".into()
                } else {
                    p.display().to_string()
                }
            })
            .unwrap_or_else(|_| path.display().to_string())
    };
    let mut desired = Desired {
        project: config.project.clone(),
        project_id: project_id(&config.project, &config.root),
        agent: agent.clone(),
        images: BTreeMap::new(),
        sandboxes: BTreeMap::new(),
        servers: BTreeMap::new(),
        agents: BTreeMap::new(),
        // Filled in once the engine answered (below).
        engine: EngineFacts::local_rootful(),
    };
    for name in images {
        let image = &config.images[name];
        let spec = match &image.source {
            ImageSource::Existing { reference } => ImageSpec {
                name: name.to_string(),
                reference: reference.clone(),
                pull: image.pull,
                build: None,
            },
            ImageSource::Build {
                containerfile,
                context: context_dir,
                build_args,
                target,
            } => {
                let containerfile_text = std::fs::read_to_string(containerfile).map_err(|e| {
                    Error::new(format!("cannot read the Containerfile of image `{name}`"))
                        .cause(format!("`{}`: {e}", containerfile.display()))
                })?;
                let rules = IgnoreRules::load(context_dir).map_err(|e| {
                    Error::new(format!("cannot read the build context of image `{name}`"))
                        .cause(e.to_string())
                })?;
                let digest =
                    context::digest(context_dir, &rules, inputs.hash_threads).map_err(|e| {
                        Error::new(format!("cannot read the build context of image `{name}`"))
                            .cause(e.to_string())
                    })?;
                let build_args: BTreeMap<String, Value> = build_args
                    .iter()
                    .map(|(k, v)| (k.clone(), resolver.value(v)))
                    .collect();
                let containerfile_hash = short_hash(containerfile_text.as_bytes());
                let args_hash = short_hash(
                    serde_json::to_string(&(&build_args, target, image.pull))
                        .expect("serialisable")
                        .as_bytes(),
                );
                let context_hash = digest.digest[..16].to_string();
                let tag_hash = short_hash(
                    format!(
                        "outrig-image-v1 {name} {containerfile_hash} {context_hash} {args_hash}"
                    )
                    .as_bytes(),
                );
                ImageSpec {
                    name: name.to_string(),
                    reference: format!("localhost/outrig-{name}:{tag_hash}"),
                    pull: image.pull,
                    build: Some(BuildSpec {
                        containerfile: relative(containerfile),
                        containerfile_text,
                        context: relative(context_dir),
                        ignore_file: rules.source.clone(),
                        context_files: digest.files,
                        context_bytes: digest.bytes,
                        build_args,
                        target: target.clone(),
                        containerfile_hash,
                        context_hash,
                        args_hash,
                        context_manifest: digest.manifest,
                    }),
                }
            }
        };
        desired.images.insert(name.to_string(), spec);
        let engine = (inputs.engine)()?;
        let mut sandbox = SandboxSpec {
            image: name.to_string(),
            network: if image.egress.is_empty() {
                match image.network {
                    NetworkMode::None => Network::None,
                    NetworkMode::Default => Network::Default,
                }
            } else {
                Network::Egress {
                    destinations: image.egress.clone(),
                    proxy_image: config.engine.proxy_image.clone(),
                }
            },
            workspace_host: config.workspace.host_path.display().to_string(),
            workspace_mount: config.workspace.mount.clone(),
            workspace_access: config.workspace.access,
            mounts: image
                .mounts
                .iter()
                .map(|m| MountSpec {
                    source: m.source.display().to_string(),
                    target: m.target.clone(),
                    access: m.access,
                })
                .collect(),
            tmpfs: image.tmpfs.clone(),
            cap_add: image.cap_add.clone(),
            cap_drop: image.cap_drop.clone(),
            no_new_privileges: image.no_new_privileges,
            read_only: image.read_only,
            pids_limit: image.pids_limit,
            memory: image.memory.clone(),
            cpus: image.cpus,
            limits_enforced: engine.enforces_limits(),
            user_namespace: UserNamespace::choose(
                &engine,
                owner(&config.workspace.host_path),
                config.workspace.access,
            ),
            config_hash: String::new(),
        };
        sandbox.config_hash = short_hash(
            serde_json::to_string(&(&sandbox, &desired.images[name].reference))
                .expect("serialisable")
                .as_bytes(),
        );
        desired.sandboxes.insert(name.to_string(), sandbox);
        for (server_name, server) in &image.servers {
            let spec = ServerSpec {
                image: name.to_string(),
                name: server_name.clone(),
                command: server.command.clone(),
                env: server
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), resolver.value(v)))
                    .collect(),
                workdir: server.workdir.clone(),
                startup_timeout_ms: server.startup_timeout.as_millis() as u64,
                call_timeout_ms: server.call_timeout.as_millis() as u64,
                result_max_bytes: server.result_max_bytes,
            };
            desired
                .servers
                .insert(format!("{name}.{server_name}"), spec);
        }
    }
    if let Some(agent_name) = &agent {
        let agent = &config.agents[agent_name];
        let model = &config.models[&agent.model];
        let provider = &config.providers[&model.provider];
        // The API key is read only when the agent runs (`AgentSetup`): planning and serving
        // the tools never need it, and the plan holds only its variable's name.
        desired.agents.insert(
            agent_name.clone(),
            AgentSpec {
                name: agent_name.clone(),
                image: agent.image.clone(),
                model: model.name.clone(),
                identifier: model.identifier.clone(),
                provider: provider.name.clone(),
                base_url: provider.base_url.clone(),
                api_key: provider
                    .api_key_variable
                    .as_ref()
                    .map(|v| format!("${{{v}}}")),
                tools: agent.tools.clone(),
                tool_call_max: agent.tool_call_max,
                tool_result_max: agent.tool_result_max,
            },
        );
    }
    let missing_variables = resolver.missing();
    if !missing_variables.is_empty() {
        let list: Vec<String> = missing_variables.iter().map(|v| format!("`{v}`")).collect();
        return Err(Error::new(format!(
            "environment variable{} {} {} not set",
            if list.len() == 1 { "" } else { "s" },
            list.join(", "),
            if list.len() == 1 { "is" } else { "are" }
        ))
        .hint("the config references them as `${VAR}`; export them before planning"));
    }
    desired.engine = (inputs.engine)()?;
    Ok(desired)
}

/// The project's identity on this machine: its name and a hash of its directory.
pub fn project_id(project: &str, root: &Path) -> String {
    format!(
        "{project}-{}",
        &short_hash(root.as_os_str().as_encoded_bytes())[..8]
    )
}

impl Desired {
    /// A redactor for the values of every variable this state references through `${VAR}`
    /// (server environments, build arguments, the agents' API keys).
    pub fn redactor(&self, env: &dyn Fn(&str) -> Option<String>) -> crate::secret::Redactor {
        let mut templates: Vec<&str> = Vec::new();
        for server in self.servers.values() {
            templates.extend(server.env.values().filter_map(Value::secret_template));
        }
        for image in self.images.values() {
            if let Some(build) = &image.build {
                templates.extend(build.build_args.values().filter_map(Value::secret_template));
            }
        }
        for agent in self.agents.values() {
            templates.extend(agent.api_key.as_deref());
        }
        crate::secret::Redactor::for_templates(templates, env)
    }
}

/// The owner (uid, gid) of `path`, when it can be read.
fn owner(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.uid(), metadata.gid()))
}
