//! The Kubernetes export (`outrig export kube`, `outrig plan --target kube`): one image's
//! sandbox and its MCP gateway as manifests, made from the same desired state `apply`
//! runs. Pure data: the manifests are JSON values rendered to YAML by
//! [`super::render::kube`]; nothing here reads a file or asks podman.
//!
//! The pod is the sandbox. Its one container runs the sandbox's image, and in it `outrig
//! mcp --listen --in-pod` (the binary copied in by an init container from the gateway
//! image) starts the servers as its own processes and serves them behind a ClusterIP
//! Service and a bearer token. Egress goes through a Squid proxy Deployment carrying the
//! same allow-list `apply` enforces, held to it by NetworkPolicies; `network = "none"`
//! denies every connection out. Secret values are never written: the pod takes them
//! from Secrets the export lists.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::desired::{Desired, Network};
use crate::config::model::Access;
use crate::error::Error;

/// Version of the export's JSON (`plan --target kube --json`).
pub const FORMAT_VERSION: u32 = 1;

/// The port the gateway serves MCP on, in the pod.
pub const GATEWAY_PORT: u16 = 8080;

/// The uid and gid the pod runs as (non-root, above the range images give their users).
pub const POD_USER: u32 = 10001;

/// Where the pod's config (outrig.toml, outrig.lock) is mounted.
pub const CONFIG_DIR: &str = "/etc/outrig";

/// What the init container runs: the binary, at `/usr/local/bin/outrig` in the gateway
/// image, copied to `/opt/outrig/outrig` under another name and renamed, so that it
/// appears whole or not at all.
pub const INSTALL_OUTRIG: &str =
    "cp /usr/local/bin/outrig /opt/outrig/.outrig && mv /opt/outrig/.outrig /opt/outrig/outrig";

/// What the gateway's container runs before outrig: wait (30 s at most) until the binary
/// is there. Kubernetes starts it only after the init container ended; `podman kube play`
/// (podman 4) starts both at once.
pub const WAIT_FOR_OUTRIG: &str = r#"i=0; until [ -x /opt/outrig/outrig ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done; exec /opt/outrig/outrig "$@""#;

/// The variable the gateway's bearer token is passed in.
pub const TOKEN_VARIABLE: &str = "OUTRIG_TOKEN";

/// How the sandbox is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A plain Pod.
    Pod,
    /// An agent-sandbox SandboxTemplate (`agents.x-k8s.io/v1beta1`), with an optional
    /// SandboxWarmPool.
    AgentSandbox,
}

/// Where the workspace comes from in the cluster (never a host path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Workspace {
    /// A PersistentVolumeClaim of `size`.
    Volume { size: String },
    /// `git clone` of `url` into an emptyDir, by an init container running the sandbox's
    /// image (which must have git).
    Git { url: String },
}

impl Workspace {
    /// `1Gi` → a volume; `git=URL` → a clone.
    pub fn parse(text: &str) -> Result<Workspace, Error> {
        if let Some(url) = text.strip_prefix("git=") {
            if url.is_empty() {
                return Err(Error::new("`--workspace git=` names no repository")
                    .hint("for example `--workspace git=https://example.com/team/repo.git`"));
            }
            return Ok(Workspace::Git {
                url: url.to_string(),
            });
        }
        let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &text[digits.len()..];
        let quantity = !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && ["", "Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"].contains(&unit);
        if !quantity {
            return Err(Error::new(format!(
                "`--workspace {text}` is neither a volume size nor `git=URL`"
            ))
            .hint(
                "for example `--workspace 5Gi` or `--workspace git=https://example.com/repo.git`",
            ));
        }
        Ok(Workspace::Volume {
            size: text.to_string(),
        })
    }
}

/// How to export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Options {
    pub format: Format,
    /// With [`Format::AgentSandbox`]: pods kept ready.
    pub warm_pool: Option<u32>,
    pub runtime_class: Option<String>,
    /// Default: `outrig-<project>`.
    pub namespace: Option<String>,
    pub workspace: Workspace,
    /// The image the init container copies outrig from.
    pub gateway_image: String,
    /// What `outrig mcp` in the pod is told to serve: `--agent`, `--image`, `--tools`.
    pub serve_args: Vec<String>,
}

impl Default for Options {
    /// A Pod, a 1 GiB workspace volume, this version's gateway image.
    fn default() -> Options {
        Options {
            format: Format::Pod,
            warm_pool: None,
            runtime_class: None,
            namespace: None,
            workspace: Workspace::Volume { size: "1Gi".into() },
            gateway_image: format!("localhost/outrig:{}", env!("CARGO_PKG_VERSION")),
            serve_args: Vec::new(),
        }
    }
}

/// What the export is made from.
pub struct Inputs<'a> {
    pub desired: &'a Desired,
    /// The image served.
    pub image: &'a str,
    /// The config the pod's gateway reads (see `project::pod_config`).
    pub pod_config: &'a str,
    /// The project's `outrig.lock`, when it has one: the pod serves what it pins
    /// (`--locked`).
    pub lock: Option<&'a str>,
}

/// The export: manifests in the order they apply, and the Secrets to create first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Export {
    pub format_version: u32,
    pub project: String,
    pub image: String,
    pub namespace: String,
    pub options: Options,
    pub resources: Vec<Resource>,
    /// Secrets the manifests reference, to be created before they apply: their names and
    /// keys, never values.
    pub secrets: Vec<SecretToCreate>,
}

/// One manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Resource {
    pub kind: String,
    pub name: String,
    /// What it is for, in words.
    pub purpose: String,
    /// The manifest.
    pub manifest: Value,
}

impl Resource {
    /// The file `--out` writes it to, numbered in apply order:
    /// `04-pod-outrig-demo-tools.yaml`.
    pub fn file_name(&self, index: usize) -> String {
        format!(
            "{index:02}-{}-{}.yaml",
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }
}

/// A Secret the pod reads, to be created with `kubectl create secret generic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SecretToCreate {
    pub name: String,
    /// Each key.
    pub keys: BTreeMap<String, SecretKey>,
}

/// One key of a Secret to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct SecretKey {
    /// What it holds.
    pub holds: String,
    /// Where its value comes from, as a shell word: the host variable of the same name, or
    /// a command that makes one.
    pub from: String,
}

/// A name Kubernetes accepts (DNS-1123 label): lowercase letters, digits and `-`, at most
/// 63 characters, starting and ending with a letter or digit.
pub fn dns_label(text: &str) -> String {
    let mut out: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let mut out: String = out.trim_matches('-').chars().take(63).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "outrig".into() } else { out }
}

/// podman's memory (`2g`, `512m`, bytes) as a Kubernetes quantity (`2Gi`, `512Mi`).
pub fn memory_quantity(memory: &str) -> String {
    let text = memory.trim().to_ascii_lowercase();
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let unit = match unit.trim_end_matches('b') {
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        "t" => "Ti",
        _ => "",
    };
    format!("{number}{unit}")
}

/// The Service the proxy of `name` answers at, in `namespace`.
pub fn proxy_service(name: &str) -> String {
    format!("{name}-proxy")
}

/// The names of one export's resources, and their labels.
struct Names {
    /// The pod, its Service, and the prefix of every other name.
    name: String,
    namespace: String,
    project: String,
}

impl Names {
    /// The labels of the resources of `component` (`gateway`, `proxy`, `policy`, ...).
    fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "outrig",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": self.project,
        })
    }

    /// The metadata of `resource`, a part of `component`.
    fn metadata(&self, resource: &str, component: &str) -> Value {
        json!({"name": resource, "namespace": self.namespace, "labels": self.labels(component)})
    }

    /// `<name>-<suffix>`.
    fn of(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }
}

/// Export the served image's sandbox.
pub fn export(inputs: &Inputs<'_>, options: &Options) -> Result<Export, Error> {
    let desired = inputs.desired;
    let image = inputs.image;
    let sandbox = desired
        .sandboxes
        .get(image)
        .ok_or_else(|| Error::new(format!("image `{image}` has no sandbox in the plan")))?;
    if let Some(mount) = sandbox.mounts.first() {
        return Err(Error::new(format!(
            "image `{image}` mounts `{}` from the host, which a cluster has no place for",
            mount.source
        ))
        .hint("the export never writes a hostPath: move what it needs into the image or the workspace"));
    }
    if let Workspace::Git { url } = &options.workspace {
        clone_allowed(url, &sandbox.network)?;
    }
    if options.warm_pool.is_some() && options.format != Format::AgentSandbox {
        return Err(Error::new("`--warm-pool` needs `--format agent-sandbox`"));
    }
    let names = Names {
        name: dns_label(&format!("outrig-{}-{image}", desired.project)),
        namespace: options
            .namespace
            .clone()
            .unwrap_or_else(|| dns_label(&format!("outrig-{}", desired.project))),
        project: dns_label(&desired.project),
    };
    // The variables the served servers' secrets are made of.
    let variables: BTreeSet<String> = desired
        .servers
        .values()
        .filter(|s| s.image == image)
        .flat_map(|s| s.env.values())
        .filter_map(|v| v.secret_template())
        .flat_map(crate::secret::references)
        .collect();
    let mut resources = vec![
        namespace_resource(&names.namespace),
        config_resource(&names, inputs),
    ];
    if let Workspace::Volume { size } = &options.workspace {
        resources.push(workspace_resource(&names, size));
    }
    if let Network::Egress {
        proxy_image,
        destinations,
    } = &sandbox.network
    {
        let squid = crate::egress::squid_config(destinations);
        resources.extend(proxy_resources(&names, proxy_image, &squid));
    }
    let pod = pod_spec(inputs, options, &names, &variables)?;
    resources.extend(sandbox_resources(&names, options, pod));
    resources.push(service_resource(&names));
    resources.extend(network_policies(&names, &sandbox.network));
    Ok(Export {
        format_version: FORMAT_VERSION,
        project: desired.project.clone(),
        image: image.to_string(),
        namespace: names.namespace.clone(),
        options: options.clone(),
        resources,
        secrets: secrets_to_create(&names, &variables),
    })
}

/// The gateway's token, and the variables the servers' secrets are made of.
fn secrets_to_create(names: &Names, variables: &BTreeSet<String>) -> Vec<SecretToCreate> {
    let mut secrets = vec![SecretToCreate {
        name: names.of("token"),
        keys: [(
            "token".to_string(),
            SecretKey {
                holds: "the gateway's bearer token (at least 16 random characters)".into(),
                from: "\"$(openssl rand -hex 32)\"".into(),
            },
        )]
        .into(),
    }];
    if !variables.is_empty() {
        secrets.push(SecretToCreate {
            name: names.of("env"),
            keys: variables
                .iter()
                .map(|v| {
                    let key = SecretKey {
                        holds: format!("`${{{v}}}` in outrig.toml"),
                        from: format!("\"${v}\""),
                    };
                    (v.clone(), key)
                })
                .collect(),
        });
    }
    secrets
}

fn namespace_resource(namespace: &str) -> Resource {
    Resource {
        kind: "Namespace".into(),
        name: namespace.to_string(),
        purpose: "the sandbox's namespace, held to Pod Security `restricted`".into(),
        manifest: json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
        }),
    }
}

fn config_resource(names: &Names, inputs: &Inputs<'_>) -> Resource {
    let mut data = json!({"outrig.toml": inputs.pod_config});
    if let Some(lock) = inputs.lock {
        data["outrig.lock"] = json!(lock);
    }
    Resource {
        kind: "ConfigMap".into(),
        name: names.of("config"),
        purpose: "the config the gateway serves (and outrig.lock, which it holds the tools to)"
            .into(),
        manifest: json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": names.metadata(&names.of("config"), "gateway"),
            "data": data,
        }),
    }
}

fn workspace_resource(names: &Names, size: &str) -> Resource {
    Resource {
        kind: "PersistentVolumeClaim".into(),
        name: names.of("workspace"),
        purpose: "the workspace the tools see".into(),
        manifest: json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": names.metadata(&names.of("workspace"), "workspace"),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            },
        }),
    }
}

/// The sandbox: a Pod, or an agent-sandbox template of it (and its warm pool).
fn sandbox_resources(names: &Names, options: &Options, pod: Value) -> Vec<Resource> {
    let name = &names.name;
    let labels = names.labels("gateway");
    match options.format {
        Format::Pod => vec![Resource {
            kind: "Pod".into(),
            name: name.clone(),
            purpose: "the sandbox: its servers, started and served by `outrig mcp --in-pod`".into(),
            manifest: json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": names.namespace,
                    "labels": labels,
                    "annotations": podman_annotations(),
                },
                "spec": pod,
            }),
        }],
        Format::AgentSandbox => {
            let mut resources = vec![Resource {
                kind: "SandboxTemplate".into(),
                name: name.clone(),
                purpose: "the sandbox as an agent-sandbox template: each Sandbox claimed from it runs the servers behind `outrig mcp --in-pod`".into(),
                manifest: json!({
                    "apiVersion": "agents.x-k8s.io/v1beta1",
                    "kind": "SandboxTemplate",
                    "metadata": names.metadata(name, "gateway"),
                    "spec": {
                        "podTemplate": {
                            "metadata": {"labels": labels, "annotations": podman_annotations()},
                            "spec": pod,
                        },
                    },
                }),
            }];
            if let Some(replicas) = options.warm_pool {
                resources.push(Resource {
                    kind: "SandboxWarmPool".into(),
                    name: names.of("pool"),
                    purpose: format!("{replicas} sandbox(es) kept ready"),
                    manifest: json!({
                        "apiVersion": "agents.x-k8s.io/v1beta1",
                        "kind": "SandboxWarmPool",
                        "metadata": names.metadata(&names.of("pool"), "gateway"),
                        "spec": {
                            "replicas": replicas,
                            "sandboxTemplateRef": {"name": name},
                        },
                    }),
                });
            }
            resources
        }
    }
}

fn service_resource(names: &Names) -> Resource {
    let (name, namespace) = (&names.name, &names.namespace);
    Resource {
        kind: "Service".into(),
        name: name.clone(),
        purpose: format!(
            "the gateway: MCP over Streamable HTTP at http://{name}.{namespace}.svc:{GATEWAY_PORT}/mcp, behind the bearer token"
        ),
        manifest: json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": names.metadata(name, "gateway"),
            "spec": {
                "type": "ClusterIP",
                "selector": names.labels("gateway"),
                "ports": [{"name": "mcp", "port": GATEWAY_PORT, "targetPort": "mcp", "protocol": "TCP"}],
            },
        }),
    }
}

/// The clone's environment: a home, and with egress the proxy.
fn clone_env(network: &Network, name: &str) -> Value {
    let mut env = vec![json!({"name": "HOME", "value": "/tmp"})];
    if let Network::Egress { .. } = network {
        let url = format!(
            "http://{}:{}",
            proxy_service(name),
            crate::egress::PROXY_PORT
        );
        for variable in ["HTTPS_PROXY", "HTTP_PROXY"] {
            env.push(json!({"name": variable, "value": url}));
        }
    }
    Value::Array(env)
}

/// What a reader of the export should know about `plan`, the plan it was made from: an
/// image not built yet, tools no `outrig.lock` holds the pod to.
pub fn notes(plan: &super::Plan, export: &Export) -> Vec<String> {
    let mut notes = Vec::new();
    let pending = plan.steps.iter().any(|s| {
        s.address == super::Address::Image(export.image.clone())
            && matches!(s.action, super::Action::Create | super::Action::Replace)
    });
    if pending {
        notes.push(format!(
            "image `{}` is not built yet: `outrig lock` (or `outrig apply`) builds it, to push where the cluster pulls from",
            export.image
        ));
    }
    if plan.lock == super::LockState::Absent {
        notes.push(
            "there is no outrig.lock: the pod serves whatever tools its servers offer; `outrig lock`, review, and export again to hold it to the reviewed tools"
                .into(),
        );
    }
    notes
}

/// Whether the pod may clone `url`: its init container has the sandbox's way out.
fn clone_allowed(url: &str, network: &Network) -> Result<(), Error> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("ssh", url));
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
            (host, port.parse().unwrap_or(0))
        }
        _ => (authority, if scheme == "http" { 80 } else { 443 }),
    };
    match network {
        Network::Default => Ok(()),
        Network::None => Err(Error::new(format!(
            "`--workspace git={url}`: the sandbox has no network (`network = \"none\"`), so the pod cannot clone it"
        ))
        .hint("use a volume (`--workspace 5Gi`) and fill it, or allow the git host in `egress`")),
        Network::Egress { destinations, .. } => {
            if !matches!(scheme, "http" | "https") {
                return Err(Error::new(format!(
                    "`--workspace git={url}`: the pod clones through its egress proxy, which speaks HTTP(S) only"
                ))
                .hint("give an https:// URL"));
            }
            if destinations.iter().any(|d| d.allows(host, port)) {
                Ok(())
            } else {
                Err(Error::new(format!(
                    "`--workspace git={url}`: `{host}:{port}` is not in the image's `egress` list, so the pod cannot clone it"
                ))
                .hint(format!("add \"{host}:{port}\" to `egress`, or use a volume (`--workspace 5Gi`)")))
            }
        }
    }
}

/// What `podman kube play` needs to run the pod: podman 4 removes a finished init
/// container of the default type while it may still be running, and fails the play; an
/// init container of type `always` is kept. Kubernetes ignores the annotation.
fn podman_annotations() -> Value {
    json!({"io.podman.annotations.init.container.type": "always"})
}

/// A container's securityContext under Pod Security `restricted`, root filesystem
/// read-only.
fn restricted_container() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The pod-level securityContext: a fixed non-root uid and gid, the runtime's seccomp
/// profile.
fn restricted_pod() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": POD_USER,
        "runAsGroup": POD_USER,
        "fsGroup": POD_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Small, fixed resources for the init containers and the proxy.
fn small_resources() -> Value {
    json!({
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    })
}

fn pod_spec(
    inputs: &Inputs<'_>,
    options: &Options,
    names: &Names,
    variables: &BTreeSet<String>,
) -> Result<Value, Error> {
    let (name, namespace) = (names.name.as_str(), names.namespace.as_str());
    let desired = inputs.desired;
    let sandbox = &desired.sandboxes[inputs.image];
    let reference = &desired.images[inputs.image].reference;
    let token_secret = format!("{name}-token");
    let env_secret = format!("{name}-env");
    // Volumes named for this pod alone: `podman kube play` makes each a named volume,
    // which pods whose volumes share a name would share.
    let volume = |what: &str| dns_label(&format!("{name}-{what}"));
    let mut command: Vec<String> = [
        "sh",
        "-c",
        WAIT_FOR_OUTRIG,
        "outrig",
        "mcp",
        "--in-pod",
        "--config",
        &format!("{CONFIG_DIR}/outrig.toml"),
        "--listen",
        &format!("0.0.0.0:{GATEWAY_PORT}"),
        "--allow-remote",
        "--token-env",
        TOKEN_VARIABLE,
        "--session-root",
        "/tmp/outrig/sessions",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for host in [
        name.to_string(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
    ] {
        command.push("--allow-host".into());
        command.push(host);
    }
    if inputs.lock.is_some() {
        command.push("--locked".into());
    }
    command.extend(options.serve_args.iter().cloned());
    let mut env = vec![
        json!({"name": TOKEN_VARIABLE, "valueFrom": {"secretKeyRef": {"name": token_secret, "key": "token"}}}),
        json!({"name": "HOME", "value": "/tmp"}),
        json!({"name": "XDG_DATA_HOME", "value": "/tmp/outrig/data"}),
        json!({"name": "XDG_CACHE_HOME", "value": "/tmp/outrig/cache"}),
    ];
    for variable in variables {
        env.push(json!({"name": variable, "valueFrom": {"secretKeyRef": {"name": env_secret, "key": variable}}}));
    }
    if let Network::Egress { .. } = sandbox.network {
        env.push(json!({"name": "OUTRIG_POD_PROXY", "value": proxy_service(name)}));
    }
    let mut mounts = vec![
        json!({"name": volume("outrig"), "mountPath": "/opt/outrig", "readOnly": true}),
        json!({"name": volume("config"), "mountPath": CONFIG_DIR, "readOnly": true}),
        json!({"name": volume("tmp"), "mountPath": "/tmp"}),
        json!({
            "name": volume("workspace"),
            "mountPath": sandbox.workspace_mount,
            "readOnly": sandbox.workspace_access == Access::ReadOnly,
        }),
    ];
    let mut volumes = vec![
        json!({"name": volume("outrig"), "emptyDir": {"sizeLimit": "256Mi"}}),
        json!({"name": volume("config"), "configMap": {"name": format!("{name}-config")}}),
        json!({"name": volume("tmp"), "emptyDir": {"sizeLimit": "1Gi"}}),
    ];
    volumes.push(match &options.workspace {
        Workspace::Volume { .. } => {
            json!({"name": volume("workspace"), "persistentVolumeClaim": {"claimName": format!("{name}-workspace")}})
        }
        Workspace::Git { .. } => json!({"name": volume("workspace"), "emptyDir": {}}),
    });
    for (index, path) in sandbox.tmpfs.iter().enumerate() {
        if path == "/tmp" {
            continue;
        }
        let tmpfs = volume(&format!("tmpfs-{index}"));
        mounts.push(json!({"name": tmpfs, "mountPath": path}));
        volumes.push(json!({"name": tmpfs, "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}));
    }
    let mut init = vec![json!({
        "name": "outrig",
        "image": options.gateway_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", INSTALL_OUTRIG],
        "securityContext": restricted_container(),
        "resources": small_resources(),
        "volumeMounts": [{"name": volume("outrig"), "mountPath": "/opt/outrig"}],
    })];
    if let Workspace::Git { url } = &options.workspace {
        init.push(json!({
            "name": "workspace",
            "image": reference,
            "imagePullPolicy": "IfNotPresent",
            "command": ["git", "clone", "--depth=1", "--", url, sandbox.workspace_mount],
            "env": clone_env(&sandbox.network, name),
            "securityContext": restricted_container(),
            "resources": small_resources(),
            "volumeMounts": [
                {"name": volume("workspace"), "mountPath": sandbox.workspace_mount},
                {"name": volume("tmp"), "mountPath": "/tmp"},
            ],
        }));
    }
    let memory = memory_quantity(&sandbox.memory);
    let cpu = sandbox
        .cpus
        .map_or_else(|| "1".to_string(), |cpus| format!("{cpus}"));
    let probe = json!({
        "tcpSocket": {"port": "mcp"},
        "initialDelaySeconds": 2,
        "periodSeconds": 10,
    });
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "restartPolicy": "OnFailure",
        "securityContext": restricted_pod(),
        "initContainers": init,
        "containers": [{
            "name": "gateway",
            "image": reference,
            "imagePullPolicy": "IfNotPresent",
            "command": command,
            "env": env,
            "ports": [{"name": "mcp", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
            "readinessProbe": probe,
            "livenessProbe": probe,
            "securityContext": restricted_container(),
            "resources": {
                "requests": {"cpu": cpu, "memory": memory},
                "limits": {"cpu": cpu, "memory": memory},
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    });
    if let Some(class) = &options.runtime_class {
        spec["runtimeClassName"] = json!(class);
    }
    Ok(spec)
}

/// The egress proxy: its configuration (the same Squid configuration `apply` starts its
/// proxy with), a Deployment and a Service.
fn proxy_resources(names: &Names, proxy_image: &str, squid: &str) -> Vec<Resource> {
    let proxy = proxy_service(&names.name);
    let labels = names.labels("proxy");
    let metadata = |resource: &str, component: &str| names.metadata(resource, component);
    let tmp = dns_label(&format!("{proxy}-tmp"));
    vec![
        Resource {
            kind: "ConfigMap".into(),
            name: proxy.clone(),
            purpose: "the egress proxy's allow-list, as `apply` enforces it".into(),
            manifest: json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(&proxy, "proxy"),
                "data": {"squid.conf": squid},
            }),
        },
        Resource {
            kind: "Deployment".into(),
            name: proxy.clone(),
            purpose: "the egress proxy: the only way out of the sandbox".into(),
            manifest: json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(&proxy, "proxy"),
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "automountServiceAccountToken": false,
                            "enableServiceLinks": false,
                            "securityContext": restricted_pod(),
                            "containers": [{
                                "name": "squid",
                                "image": proxy_image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["sh", "-c", crate::egress::PROXY_SCRIPT],
                                "env": [{"name": "OUTRIG_PROXY_CONFIG", "valueFrom": {"configMapKeyRef": {"name": proxy, "key": "squid.conf"}}}],
                                "ports": [{"name": "proxy", "containerPort": crate::egress::PROXY_PORT, "protocol": "TCP"}],
                                "readinessProbe": {"tcpSocket": {"port": "proxy"}, "periodSeconds": 10},
                                "livenessProbe": {"tcpSocket": {"port": "proxy"}, "periodSeconds": 10},
                                "securityContext": restricted_container(),
                                "resources": small_resources(),
                                "volumeMounts": [{"name": tmp, "mountPath": "/tmp"}],
                            }],
                            "volumes": [{"name": tmp, "emptyDir": {"sizeLimit": "256Mi"}}],
                        },
                    },
                },
            }),
        },
        Resource {
            kind: "Service".into(),
            name: proxy.clone(),
            purpose: "the egress proxy's address for the sandbox".into(),
            manifest: json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(&proxy, "proxy"),
                "spec": {
                    "type": "ClusterIP",
                    "selector": labels,
                    "ports": [{"name": "proxy", "port": crate::egress::PROXY_PORT, "targetPort": "proxy", "protocol": "TCP"}],
                },
            }),
        },
    ]
}

/// Default deny for the namespace; the gateway reachable on its port; its way out as the
/// config says (none, everything, or the proxy and DNS); the proxy's own way out.
fn network_policies(names: &Names, network: &Network) -> Vec<Resource> {
    let name = &names.name;
    let labels = |component: &str| names.labels(component);
    let metadata = |resource: &str, component: &str| names.metadata(resource, component);
    let policy = |resource: &str, component: &str, spec: Value| Resource {
        kind: "NetworkPolicy".into(),
        name: resource.to_string(),
        purpose: String::new(),
        manifest: json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(resource, component),
            "spec": spec,
        }),
    };
    let dns = json!({
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    });
    let (egress, way_out) = match network {
        Network::None => (json!([]), "no connection out"),
        Network::Default => (
            json!([{}]),
            "every connection out (`network = \"default\"`)",
        ),
        Network::Egress { .. } => (
            json!([dns, {
                "to": [{"podSelector": {"matchLabels": labels("proxy")}}],
                "ports": [{"protocol": "TCP", "port": crate::egress::PROXY_PORT}],
            }]),
            "DNS and the egress proxy only",
        ),
    };
    let mut policies = vec![
        Resource {
            purpose: "default deny: nothing in the namespace connects in or out unless a policy below lets it".into(),
            ..policy(
                &format!("{name}-default-deny"),
                "policy",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            )
        },
        Resource {
            purpose: format!("the sandbox: MCP clients in on port {GATEWAY_PORT}; {way_out}"),
            ..policy(
                &format!("{name}-gateway"),
                "policy",
                json!({
                    "podSelector": {"matchLabels": labels("gateway")},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"ports": [{"protocol": "TCP", "port": GATEWAY_PORT}]}],
                    "egress": egress,
                }),
            )
        },
    ];
    if let Network::Egress { destinations, .. } = network {
        let ports: BTreeSet<u16> = destinations.iter().map(|d| d.port).collect();
        let ports: Vec<Value> = ports
            .into_iter()
            .map(|port| json!({"protocol": "TCP", "port": port}))
            .collect();
        policies.push(Resource {
            purpose: "the egress proxy: the sandbox in; DNS and the allow-list's ports out (Squid refuses every destination not listed)".into(),
            ..policy(
                &format!("{name}-proxy"),
                "policy",
                json!({
                    "podSelector": {"matchLabels": labels("proxy")},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{
                        "from": [{"podSelector": {"matchLabels": labels("gateway")}}],
                        "ports": [{"protocol": "TCP", "port": crate::egress::PROXY_PORT}],
                    }],
                    "egress": [dns, {"ports": ports}],
                }),
            )
        });
    }
    policies
}

/// The config the pod's gateway reads: the project's own `outrig.toml` (comments and all),
/// with what only the build machine has taken out. Each image runs from the reference the
/// plan built or pulled (`from`, never pulled again); the workspace is the pod's mount;
/// host mounts, the session root and the engine settings go.
pub fn pod_config(config_text: &str, desired: &Desired) -> Result<String, Error> {
    let mut document: toml_edit::DocumentMut =
        config_text.parse().map_err(|e: toml_edit::TomlError| {
            Error::new("cannot read outrig.toml").cause(e.to_string())
        })?;
    document.remove("session-root");
    document.remove("engine");
    let mount = desired
        .sandboxes
        .values()
        .next()
        .map_or("/workspace", |s| s.workspace_mount.as_str());
    document["workspace"]["path"] = toml_edit::value(mount);
    if let Some(images) = document
        .get_mut("images")
        .and_then(|i| i.as_table_like_mut())
    {
        for (name, image) in images.iter_mut() {
            let Some(image) = image.as_table_like_mut() else {
                continue;
            };
            for key in ["containerfile", "context", "build-args", "target", "mounts"] {
                image.remove(key);
            }
            if let Some(spec) = desired.images.get(name.get()) {
                image.insert("from", toml_edit::value(spec.reference.as_str()));
            }
            image.insert("pull", toml_edit::value("never"));
        }
    }
    let mut text = String::from(
        "# The config of the gateway in the pod, written by `outrig export kube` from the project's\n\
         # outrig.toml: images run as built, the workspace is the pod's volume.\n",
    );
    text.push_str(&document.to_string());
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_quantities_are_what_kubernetes_accepts() {
        assert_eq!(
            dns_label("outrig-My_Project-tools"),
            "outrig-my-project-tools"
        );
        assert_eq!(dns_label("--a..b--"), "a-b");
        assert_eq!(dns_label(&"x".repeat(80)).len(), 63);
        assert_eq!(memory_quantity("2g"), "2Gi");
        assert_eq!(memory_quantity("512m"), "512Mi");
        assert_eq!(memory_quantity("1024"), "1024");
        assert_eq!(
            Workspace::parse("5Gi").unwrap(),
            Workspace::Volume { size: "5Gi".into() }
        );
        assert_eq!(
            Workspace::parse("git=https://example.com/r.git").unwrap(),
            Workspace::Git {
                url: "https://example.com/r.git".into()
            }
        );
        assert!(Workspace::parse("lots").is_err());
        assert!(Workspace::parse("git=").is_err());
    }

    #[test]
    fn a_pod_clones_its_workspace_only_where_its_network_lets_it() {
        let egress = Network::Egress {
            destinations: vec!["git.example.com:443".parse().unwrap()],
            proxy_image: "proxy".into(),
        };
        let url = "https://git.example.com/team/repo.git";
        assert!(clone_allowed(url, &Network::Default).is_ok());
        assert!(clone_allowed(url, &egress).is_ok());
        let none = clone_allowed(url, &Network::None).unwrap_err().render();
        assert!(none.contains("no network"), "{none}");
        let unlisted = clone_allowed("https://other.example.com/r.git", &egress)
            .unwrap_err()
            .render();
        assert!(
            unlisted.contains("`other.example.com:443` is not in"),
            "{unlisted}"
        );
        let ssh = clone_allowed("git@git.example.com:team/repo.git", &egress)
            .unwrap_err()
            .render();
        assert!(ssh.contains("HTTP(S) only"), "{ssh}");
    }
}
