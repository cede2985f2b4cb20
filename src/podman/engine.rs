//! What the podman engine outrig talks to is and can do: local or remote, rootful or
//! rootless, which cgroups it has, whether it can give a rootful sandbox a user namespace
//! of its own. Read once per command from `podman info`; every choice that depends on it
//! (how servers' stdio travels, the user-namespace mode, which limits can be claimed) is
//! made from these facts and shown in the plan.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::command::PodmanCommand;
use super::runtime::{ProcessError, Runtime, Transport};

/// The engine's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct EngineFacts {
    /// The client talks to a podman service over a connection (`--url`, `--connection`,
    /// `CONTAINER_HOST`, a podman machine): no file descriptor crosses it.
    pub remote: bool,
    /// The engine runs containers as an unprivileged user.
    pub rootless: bool,
    pub cgroups: Cgroups,
    /// The cgroup controllers the engine can use for a container.
    pub controllers: Vec<String>,
    /// Rootful only: the `containers` user has subordinate ids, so `--userns=auto` can
    /// give each sandbox a range of its own.
    pub auto_userns: bool,
    /// How podman stores images and containers (`overlay`, `vfs`, ...).
    pub storage_driver: String,
}

/// The cgroup hierarchy the engine's host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cgroups {
    V1,
    V2,
}

impl EngineFacts {
    /// What a local rootful engine on a cgroups v2 host reports: the facts tests plan with.
    pub fn local_rootful() -> EngineFacts {
        EngineFacts {
            remote: false,
            rootless: false,
            cgroups: Cgroups::V2,
            controllers: ["cpu", "memory", "pids"].map(String::from).to_vec(),
            auto_userns: true,
            storage_driver: "overlay".into(),
        }
    }

    /// A pod's own container, where the gateway of an exported pod starts the servers itself
    /// (`outrig mcp --in-pod`): no podman, limits held by Kubernetes.
    pub fn in_pod() -> EngineFacts {
        EngineFacts {
            remote: false,
            rootless: true,
            cgroups: Cgroups::V2,
            controllers: Vec::new(),
            auto_userns: false,
            storage_driver: "none".into(),
        }
    }

    /// Whether podman can hold a sandbox to `--pids-limit` and `--memory`: rootless podman
    /// on cgroups v1 cannot (it warns and ignores them), nor can one whose cgroup lacks
    /// the controllers.
    pub fn enforces_limits(&self) -> bool {
        if self.rootless && self.cgroups == Cgroups::V1 {
            return false;
        }
        ["pids", "memory"]
            .iter()
            .all(|c| self.controllers.iter().any(|have| have == c))
    }

    /// Whether podman copies the whole image for every container (vfs): every sandbox is
    /// then slow to start and to remove.
    pub fn copies_images(&self) -> bool {
        self.storage_driver == "vfs"
    }

    /// Whether podman can hold a sandbox to `--cpus`.
    pub fn enforces_cpus(&self) -> bool {
        !(self.rootless && self.cgroups == Cgroups::V1)
            && self.controllers.iter().any(|c| c == "cpu")
    }

    /// How servers' stdio reaches outrig on this engine.
    pub fn transport(&self) -> Transport {
        if self.remote {
            Transport::ExecInteractive
        } else {
            Transport::PassedPipes
        }
    }
}

/// Why the facts could not be read.
#[derive(Debug)]
pub enum FactsError {
    Process(ProcessError),
    Parse { command: String, error: String },
}

/// The part of `podman info --format json` outrig reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    host: Host,
    #[serde(default)]
    store: Option<Store>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Store {
    #[serde(default)]
    graph_driver_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Host {
    #[serde(default)]
    service_is_remote: bool,
    #[serde(default)]
    cgroup_version: String,
    #[serde(default)]
    cgroup_controllers: Option<Vec<String>>,
    security: Security,
}

#[derive(Deserialize)]
struct Security {
    #[serde(default)]
    rootless: bool,
}

/// Ask the engine (`podman info`); `subuid` is the text of `/etc/subuid` on this machine
/// (read for local rootful engines only).
pub fn read(
    runtime: &dyn Runtime,
    base: &PodmanCommand,
    subuid: &dyn Fn() -> Option<String>,
) -> Result<EngineFacts, FactsError> {
    let command = base.clone().args(["info", "--format", "json"]);
    let output = runtime.run(&command).map_err(FactsError::Process)?;
    let info: Info = serde_json::from_str(output.stdout.trim()).map_err(|e| FactsError::Parse {
        command: command.to_string(),
        error: e.to_string(),
    })?;
    let host = info.host;
    let rootless = host.security.rootless;
    let remote = host.service_is_remote;
    let auto_userns = !rootless
        && if remote {
            // The service's /etc/subuid is not ours to read; podman says so if it lacks
            // the range (see the hint on a failed `podman run`).
            true
        } else {
            subuid().is_some_and(|text| has_range(&text, "containers"))
        };
    Ok(EngineFacts {
        remote,
        rootless,
        cgroups: if host.cgroup_version == "v1" {
            Cgroups::V1
        } else {
            Cgroups::V2
        },
        controllers: host.cgroup_controllers.unwrap_or_default(),
        auto_userns,
        storage_driver: info.store.map(|s| s.graph_driver_name).unwrap_or_default(),
    })
}

/// Whether `/etc/subuid`-style `text` gives `user` a range.
fn has_range(text: &str, user: &str) -> bool {
    text.lines().any(|line| {
        let mut fields = line.trim().split(':');
        fields.next() == Some(user)
            && fields
                .nth(1)
                .and_then(|count| count.trim().parse::<u64>().ok())
                .is_some_and(|count| count >= 65_536)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_not_claimed_where_podman_ignores_them() {
        let mut facts = EngineFacts::local_rootful();
        assert!(facts.enforces_limits() && facts.enforces_cpus());
        facts.rootless = true;
        facts.cgroups = Cgroups::V1;
        assert!(!facts.enforces_limits() && !facts.enforces_cpus());
        facts.cgroups = Cgroups::V2;
        facts.controllers = vec!["cpu".into(), "pids".into()];
        assert!(!facts.enforces_limits(), "no memory controller delegated");
        assert!(facts.enforces_cpus());
    }

    #[test]
    fn subordinate_ranges_are_read_by_user() {
        assert!(has_range(
            "containers:2147483647:2147483648\n",
            "containers"
        ));
        assert!(!has_range("containers:100000:1000\n", "containers"));
        assert!(!has_range("alice:100000:65536\n", "containers"));
        assert!(!has_range("", "containers"));
    }
}
