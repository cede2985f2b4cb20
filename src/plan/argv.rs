//! The podman commands a plan carries, each argv written here once: the image builds, the
//! sandbox and its watcher, the servers' `exec`, the egress proxy, its network and probes.
//! Session values (its id, its directory, a proxy's address) are left as placeholders that
//! [`Planned::bind`] fills; a secret is a typed argument that only it resolves, onto
//! podman's environment, never its argv.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::desired::{Desired, ImageSpec, Network, Transport};
use crate::config::model::{Access, PullPolicy};
use crate::config::resolve::Engine;
use crate::podman::command::{Arg, Planned, SecretArg};
use crate::podman::labels;
use crate::secret::Value;

impl Desired {
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
            command = command.arg("--build-arg").arg(variable(name, value));
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
        let proxy = match self.sandboxes.get(&server.image).map(|s| &s.network) {
            Some(Network::Egress { .. }) => Some(format!(
                "http://{{{}}}:{}",
                proxy_placeholder(&server.image),
                crate::egress::PROXY_PORT
            )),
            _ => None,
        };
        command = server_variables(command, proxy.as_deref(), &server.env);
        command = command.arg(container);
        if transport == Transport::PassedPipes {
            command = command.args(["sh", "-c", SERVER_SHIM, "sh"]);
        }
        Some(command.args(server.command.iter().map(String::as_str)))
    }

    /// The command that starts server `key` in a pod exported with `outrig export kube`,
    /// where the gateway runs in the sandbox's own container: `outrig` (the binary at
    /// `outrig`) plays `podman exec`, starting the server with only its own variables (a
    /// secret's value taken from the gateway's environment, never its argv) in its
    /// working directory, its stdio on the descriptors the gateway passes down. With
    /// egress, the proxy is the Service at `proxy`.
    pub fn pod_exec_command(
        &self,
        outrig: &str,
        key: &str,
        proxy: Option<&str>,
    ) -> Option<Planned> {
        let server = self.servers.get(key)?;
        let mut command = Planned::new(outrig, &[])
            .args(["exec-server", "--workdir", &server.workdir])
            .arg("--env")
            .arg(Arg::session(server_marker(key, "{session}")));
        let proxy = proxy.map(|proxy| format!("http://{proxy}:{}", crate::egress::PROXY_PORT));
        command = server_variables(command, proxy.as_deref(), &server.env);
        command = command.args(["--", "sh", "-c", crate::podman::runtime::SERVER_SHIM, "sh"]);
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

/// A server's variables as `--env` arguments: with `proxy` (its URL, maybe with a
/// placeholder the session fills), the proxy variables; then its own, a secret by name.
fn server_variables(
    mut command: Planned,
    proxy: Option<&str>,
    env: &std::collections::BTreeMap<String, Value>,
) -> Planned {
    if let Some(url) = proxy {
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
    for (name, value) in env {
        command = command.arg("--env").arg(variable(name, value));
    }
    command
}

/// Variable `name` as `--env` or `--build-arg` takes it: `NAME=VALUE`, or for a secret
/// its name alone, the value reaching podman through its environment only.
fn variable(name: &str, value: &Value) -> Arg {
    match value {
        Value::Literal(text) => Arg::Text(format!("{name}={text}")),
        Value::Secret {
            template,
            fingerprint,
        } => Arg::Secret {
            secret: SecretArg {
                name: name.to_string(),
                template: template.clone(),
                fingerprint: fingerprint.clone(),
            },
        },
    }
}
