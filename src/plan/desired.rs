//! The desired state: what the config asks for, as resources with stable addresses and
//! content identities. Reading Containerfiles and hashing build contexts happens here;
//! comparing happens in [`super::diff`].

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{self, IgnoreRules};
use crate::config::model::{Access, NetworkMode, PullPolicy};
use crate::config::resolve::{Config, Engine, ImageSource};
use crate::digest::short_hash;
use crate::egress::Destination;
use crate::error::Error;
use crate::podman::command::{Arg, Planned};
pub use crate::podman::engine::EngineFacts;
use crate::podman::labels;
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

    /// The podman command that builds `image` (secrets passed by name only).
    pub fn build_command(
        &self,
        engine: &Engine,
        root: &Path,
        image: &ImageSpec,
    ) -> Option<Planned> {
        let build = image.build.as_ref()?;
        let mut command = Planned::new(engine.podman.clone(), &engine.global_args)
            .arg("build")
            .arg(format!("--pull={}", pull_flag(image.pull)))
            .args(["--tag", &image.reference])
            .arg("--file")
            .arg(
                crate::fs::clean_path(&root.join(&build.containerfile))
                    .display()
                    .to_string(),
            );
        for (key, value) in [
            (labels::PROJECT, self.project.as_str()),
            (labels::IMAGE, image.name.as_str()),
            (
                labels::CONTAINERFILE_HASH,
                build.containerfile_hash.as_str(),
            ),
            (labels::CONTEXT_HASH, build.context_hash.as_str()),
            (labels::ARGS_HASH, build.args_hash.as_str()),
        ] {
            command = command.arg("--label").arg(format!("{key}={value}"));
        }
        if let Some(target) = &build.target {
            command = command.args(["--target", target]);
        }
        for (name, value) in &build.build_args {
            command = match value {
                Value::Literal(text) => command.arg("--build-arg").arg(format!("{name}={text}")),
                // The value reaches podman through its environment only.
                Value::Secret { .. } => command.args(["--build-arg", name]),
            };
        }
        Some(
            command.arg(
                crate::fs::clean_path(&root.join(&build.context))
                    .display()
                    .to_string(),
            ),
        )
    }

    /// The podman command that starts the sandbox of `image`, its name, labels and the
    /// session directory label filled in by the session.
    pub fn run_command(&self, engine: &Engine, image: &str) -> Option<Planned> {
        let sandbox = self.sandboxes.get(image)?;
        let reference = &self.images.get(image)?.reference;
        let mut command = Planned::new(engine.podman.clone(), &engine.global_args)
            .args([
                "run",
                "--detach",
                "--rm",
                "--init",
                "--pull=never",
                "--name",
            ])
            .arg(self.container(image));
        command = self.session_labels(
            command,
            &[
                (labels::SANDBOX, image),
                (labels::CONFIG_HASH, sandbox.config_hash.as_str()),
            ],
        );
        // podman's default network is named `podman`; `default` is outrig's word for it.
        command = match &sandbox.network {
            Network::None => command.arg("--network=none"),
            Network::Default => command.arg("--network=podman"),
            Network::Egress { .. } => command
                .arg(Arg::session(format!(
                    "--network={}",
                    self.egress_network_template(image)
                )))
                .arg("--dns=127.0.0.1"),
        };
        for cap in &sandbox.cap_drop {
            command = command.arg(format!("--cap-drop={cap}"));
        }
        for cap in &sandbox.cap_add {
            command = command.arg(format!("--cap-add={cap}"));
        }
        if sandbox.no_new_privileges {
            command = command.arg("--security-opt=no-new-privileges");
        }
        if sandbox.read_only {
            command = command.arg("--read-only");
        }
        if sandbox.limits_enforced {
            command = command
                .arg(format!("--pids-limit={}", sandbox.pids_limit))
                .arg(format!("--memory={}", sandbox.memory));
            if let Some(cpus) = sandbox.cpus {
                command = command.arg(format!("--cpus={cpus}"));
            }
        }
        command = command.args(sandbox.user_namespace.args());
        let mount = |source: &str, target: &str, access: Access| {
            let mut spec = format!("type=bind,source={source},target={target}");
            if access == Access::ReadOnly {
                spec.push_str(",readonly=true");
            }
            spec
        };
        command = command.arg("--mount").arg(mount(
            &sandbox.workspace_host,
            &sandbox.workspace_mount,
            sandbox.workspace_access,
        ));
        for extra in &sandbox.mounts {
            command = command
                .arg("--mount")
                .arg(mount(&extra.source, &extra.target, extra.access));
        }
        for path in &sandbox.tmpfs {
            command = command.arg(format!("--tmpfs={path}"));
        }
        Some(command.args([reference.as_str(), "sh", "-c", SANDBOX_SCRIPT]))
    }

    /// The name of the sandbox of `image`, the session filling in its id.
    pub fn container(&self, image: &str) -> Arg {
        Arg::session(self.container_template(image))
    }

    fn container_template(&self, image: &str) -> String {
        format!("outrig-{}-{image}-{{session}}", self.project)
    }

    /// The podman command that starts server `key` (`<image>.<server>`) in `container`,
    /// marked with `OUTRIG_SERVER` so teardown finds its processes. On a local engine it
    /// is detached, its stdio on descriptors outrig passes down (see
    /// [`crate::podman::runtime::SERVER_SHIM`]); on a remote one its stdio is the podman
    /// client's (`--interactive`). Secret values are set by apply on podman's environment.
    pub fn exec_command(&self, engine: &Engine, key: &str, container: Arg) -> Option<Planned> {
        let server = self.servers.get(key)?;
        use crate::podman::runtime::{SERVER_FDS, SERVER_SHIM};
        let transport = self.engine.transport();
        let mut command = Planned::new(engine.podman.clone(), &engine.global_args).arg("exec");
        command = match transport {
            Transport::PassedPipes => {
                command.args(["--detach", &format!("--preserve-fds={SERVER_FDS}")])
            }
            Transport::ExecInteractive => command.arg("--interactive"),
        };
        command = command
            .arg("--env")
            .arg(Arg::session(server_marker(key, "{session}")))
            .args(["--workdir", &server.workdir]);
        if let Some(Network::Egress { .. }) = self.sandboxes.get(&server.image).map(|s| &s.network)
        {
            let url = format!(
                "http://{{{}}}:{}",
                proxy_placeholder(&server.image),
                crate::egress::PROXY_PORT
            );
            for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                command = command
                    .arg("--env")
                    .arg(Arg::session(format!("{name}={url}")));
            }
            for name in ["NO_PROXY", "no_proxy"] {
                command = command
                    .arg("--env")
                    .arg(format!("{name}=localhost,127.0.0.1,::1"));
            }
        }
        for (name, value) in &server.env {
            command = match value {
                Value::Literal(text) => command.arg("--env").arg(format!("{name}={text}")),
                Value::Secret { .. } => command.args(["--env", name]),
            };
        }
        command = command.arg(container);
        if transport == Transport::PassedPipes {
            command = command.args(["sh", "-c", SERVER_SHIM, "sh"]);
        }
        Some(command.args(server.command.iter().map(String::as_str)))
    }

    /// The name of the internal network of `image`'s sandbox, with `{session}` in it.
    fn egress_network_template(&self, image: &str) -> String {
        crate::podman::verbs::egress_network(&self.container_template(image))
    }

    /// The name of the internal network of `image`'s sandbox, the session filling in its id.
    pub fn egress_network(&self, image: &str) -> Arg {
        Arg::session(self.egress_network_template(image))
    }

    /// The name of the proxy container of `image`'s sandbox.
    pub fn proxy_container(&self, image: &str) -> Arg {
        Arg::session(crate::podman::verbs::proxy_container(
            &self.container_template(image),
        ))
    }

    /// The labels every container and network of a session carries (project, project id,
    /// then `extra`, then the session and its directory, filled in by the session).
    fn session_labels(&self, command: Planned, extra: &[(&str, &str)]) -> Planned {
        let mut command = command;
        let ids = [
            (labels::PROJECT, self.project.as_str()),
            (labels::PROJECT_ID, self.project_id.as_str()),
        ];
        for (key, value) in ids.iter().chain(extra) {
            command = command.arg("--label").arg(format!("{key}={value}"));
        }
        command
            .arg("--label")
            .arg(Arg::session(format!("{}={{session}}", labels::SESSION)))
            .arg("--label")
            .arg(Arg::session(format!(
                "{}={{session_dir}}",
                labels::SESSION_DIR
            )))
    }

    /// The commands that give `image`'s sandbox its proxy, when it has an egress list:
    /// the internal network, the proxy on it and on podman's default network, and the
    /// probes run in the sandbox's network namespace once it runs.
    pub fn proxy_commands(&self, engine: &Engine, image: &str) -> Option<ProxyCommands> {
        let sandbox = self.sandboxes.get(image)?;
        let Network::Egress {
            destinations,
            proxy_image,
        } = &sandbox.network
        else {
            return None;
        };
        let base = || Planned::new(engine.podman.clone(), &engine.global_args);
        let network = self
            .session_labels(
                base().args(["network", "create", "--internal", "--disable-dns"]),
                &[(labels::PROXY, image)],
            )
            .arg(self.egress_network(image));
        let proxy = self
            .session_labels(
                base()
                    .args([
                        "run",
                        "--detach",
                        "--rm",
                        "--init",
                        "--pull=never",
                        "--name",
                    ])
                    .arg(self.proxy_container(image)),
                &[(labels::PROXY, image)],
            )
            .arg(Arg::session(format!(
                "--network={}",
                self.egress_network_template(image)
            )))
            .arg("--network=podman")
            .args([
                "--user=proxy",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "--read-only",
                "--tmpfs=/tmp",
            ])
            .args(
                if sandbox.limits_enforced {
                    &["--pids-limit=256", "--memory=256m"][..]
                } else {
                    &[]
                }
                .iter()
                .copied(),
            )
            .arg("--env")
            .arg(format!(
                "OUTRIG_PROXY_CONFIG={}",
                crate::egress::squid_config(destinations)
            ))
            .args([
                proxy_image.as_str(),
                "sh",
                "-c",
                crate::egress::PROXY_SCRIPT,
            ]);
        let watch = self.watch_command(engine, self.proxy_container(image));
        let listed = crate::egress::probed(destinations)?;
        let (listed_target, unlisted) =
            (listed.probe_target(), crate::egress::unlisted(destinations));
        let mut probe = base()
            .args(["run", "--rm", "--pull=never"])
            .arg(Arg::session(format!(
                "--network=container:{}",
                self.container_template(image)
            )))
            .args([
                "--user=proxy",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                proxy_image.as_str(),
                "bash",
                "-c",
                crate::egress::PROBE_SCRIPT,
                "probe",
            ])
            .arg(Arg::session(format!("{{{}}}", proxy_placeholder(image))))
            .arg(listed_target.as_str())
            .arg(unlisted.as_str());
        // Bypassing the proxy: its own address on the outside network, which answers
        // there, and a listed address itself.
        probe = probe
            .arg(Arg::session(format!(
                "{{{}}}",
                proxy_outside_placeholder(image)
            )))
            .arg(crate::egress::PROXY_PORT.to_string());
        if let Some(address) = listed.literal() {
            probe = probe.arg(address.to_string()).arg(listed.port.to_string());
        }
        if let crate::egress::Host::Name { name, .. } = &listed.host {
            probe = probe.args(["dns", name.as_str()]);
        }
        Some(ProxyCommands {
            proxy_image: proxy_image.clone(),
            network,
            proxy,
            watch,
            probe,
            listed: listed_target,
            unlisted,
            reach_required: !matches!(listed.host, crate::egress::Host::Cidr { .. }),
        })
    }

    /// The podman command that ties the sandbox in `container` to outrig's life: a shell
    /// in the sandbox reading a pipe outrig holds. When outrig ends, however it ends, the
    /// pipe closes and the shell stops the sandbox (which `--rm` then removes); a kept
    /// sandbox is released by writing `keep` to it.
    pub fn watch_command(&self, engine: &Engine, container: Arg) -> Planned {
        Planned::new(engine.podman.clone(), &engine.global_args)
            .args(["exec", "--interactive"])
            .arg(container)
            .args(["sh", "-c", WATCH_SCRIPT])
    }
}

/// The commands of a sandbox's egress proxy (see [`Desired::proxy_commands`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ProxyCommands {
    /// The image the proxy and the probes run from.
    pub proxy_image: String,
    /// `podman network create --internal --disable-dns` of the sandbox's network.
    pub network: Planned,
    /// `podman run` of the proxy.
    pub proxy: Planned,
    /// The watcher that removes the proxy when outrig ends.
    pub watch: Planned,
    /// `podman run` of the probes in the sandbox's network namespace.
    pub probe: Planned,
    /// The listed destination the probes reach, and the unlisted one they are refused.
    pub listed: String,
    pub unlisted: String,
    /// Whether the listed destination must answer (not only be let through): false when
    /// only CIDRs are listed.
    pub reach_required: bool,
}

/// The placeholder for the proxy's address on the sandbox's network.
pub fn proxy_placeholder(image: &str) -> String {
    format!("proxy.{image}")
}

/// The placeholder for the proxy's address on podman's default network.
pub fn proxy_outside_placeholder(image: &str) -> String {
    format!("proxy.{image}.outside")
}

/// The sandbox's first process (under podman's `--init`): it sleeps, and when stopped
/// (SIGTERM from `podman rm --time`, or from the watcher) ends the servers, whose stdin has
/// closed, as MCP's stdio shutdown says: it waits for them to exit (100 ms), then sends
/// them SIGTERM and waits again (2 s), then ends, taking whatever is left with it.
/// `kill -TERM -1` is the form every `sh` takes: Debian's dash refuses `kill -s TERM -1`
/// ("Illegal option -1"), which left every sandbox waiting out the whole 2 s.
pub const SANDBOX_SCRIPT: &str = r#"trap 'wait_servers() { i=0; while [ $i -lt $1 ] && grep -qs OUTRIG_SERVER= /proc/[0-9]*/environ; do sleep 0.02; i=$((i+1)); done; }; wait_servers 5; kill -TERM -1 2>/dev/null; wait_servers 100; exit 0' TERM; sleep infinity & wait"#;

/// What the watcher runs in the sandbox: wait for outrig's pipe to close (or say `keep`),
/// then stop the sandbox's first process, which ends the sandbox.
pub const WATCH_SCRIPT: &str = r#"read -r word; [ "$word" = keep ] || kill -TERM 1"#;

/// The owner (uid, gid) of `path`, when it can be read.
fn owner(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.uid(), metadata.gid()))
}

/// The variable that marks server `key`'s processes inside the sandbox, so teardown finds
/// this session's own (several sessions may run servers in one kept sandbox).
pub fn server_marker(key: &str, session_id: &str) -> String {
    format!("OUTRIG_SERVER={key}@{session_id}")
}

fn pull_flag(pull: PullPolicy) -> &'static str {
    match pull {
        PullPolicy::Never => "never",
        PullPolicy::Missing => "missing",
        PullPolicy::Always => "always",
    }
}
