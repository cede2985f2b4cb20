//! The plan's security section: what the sandbox, its servers and the agents may do now
//! that they could not before (or no longer can), against the last applied session, or
//! against nothing on a first plan. One function per kind of resource, and within a
//! sandbox one per kind of grant. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::desired::{
    AgentSpec, Desired, MountSpec, Network, SandboxSpec, ServerSpec, UserNamespace, Value,
};
use super::{Address, Direction, LimitsWhy, SecurityChange, SecurityDelta};
use crate::config::model::Access;
use crate::podman::engine::Cgroups;

/// The security deltas of `new` against `last`: sandboxes, then servers, then agents.
pub fn deltas(last: Option<&Desired>, new: &Desired) -> Vec<SecurityDelta> {
    let mut out = Deltas::default();
    for (name, sandbox) in &new.sandboxes {
        let old = last.and_then(|l| l.sandboxes.get(name));
        let mut at = out.at(Address::Sandbox(name.clone()));
        workspace(&mut at, old, sandbox);
        network(&mut at, old, sandbox);
        mounts(&mut at, old, sandbox);
        privileges(&mut at, old, sandbox, new);
        secrets_shared(&mut out, name, new);
    }
    for (key, server) in &new.servers {
        let old = last.and_then(|l| l.servers.get(key));
        self::server(&mut out.at(Address::server(key)), old, server);
    }
    if let Some(last) = last {
        for key in last
            .servers
            .keys()
            .filter(|k| !new.servers.contains_key(*k))
        {
            out.at(Address::server(key))
                .narrows(SecurityChange::ServerRemoved);
        }
    }
    for (name, agent) in &new.agents {
        let old = last.and_then(|l| l.agents.get(name));
        self::agent(&mut out.at(Address::Agent(name.clone())), old, agent);
    }
    out.0
}

/// The deltas found so far.
#[derive(Default)]
struct Deltas(Vec<SecurityDelta>);

impl Deltas {
    /// Deltas of the resource at `address`.
    fn at(&mut self, address: Address) -> At<'_> {
        At {
            deltas: self,
            address,
        }
    }
}

/// Deltas of one resource.
struct At<'a> {
    deltas: &'a mut Deltas,
    address: Address,
}

impl At<'_> {
    fn push(&mut self, direction: Direction, change: SecurityChange) {
        self.deltas.0.push(SecurityDelta {
            address: self.address.clone(),
            kind: change.kind(),
            direction,
            change,
        });
    }

    fn widens(&mut self, change: SecurityChange) {
        self.push(Direction::Widens, change);
    }

    fn narrows(&mut self, change: SecurityChange) {
        self.push(Direction::Narrows, change);
    }

    fn widens_if(&mut self, widens: bool, change: SecurityChange) {
        let direction = if widens {
            Direction::Widens
        } else {
            Direction::Narrows
        };
        self.push(direction, change);
    }
}

/// The workspace: granted on a first plan; changed when its host path or access did.
fn workspace(at: &mut At<'_>, old: Option<&SandboxSpec>, sandbox: &SandboxSpec) {
    match old {
        None => at.widens(SecurityChange::WorkspaceGranted {
            host: sandbox.workspace_host.clone(),
            mount: sandbox.workspace_mount.clone(),
            access: sandbox.workspace_access,
        }),
        Some(old)
            if old.workspace_access != sandbox.workspace_access
                || old.workspace_host != sandbox.workspace_host =>
        {
            let widens = sandbox.workspace_access == Access::ReadWrite
                && (old.workspace_access == Access::ReadOnly
                    || old.workspace_host != sandbox.workspace_host);
            at.widens_if(
                widens,
                SecurityChange::WorkspaceChanged {
                    old_host: old.workspace_host.clone(),
                    old_access: old.workspace_access,
                    host: sandbox.workspace_host.clone(),
                    access: sandbox.workspace_access,
                },
            )
        }
        _ => {}
    }
}

/// The network mode (none < egress < default), and each egress destination added or
/// removed.
fn network(at: &mut At<'_>, old: Option<&SandboxSpec>, sandbox: &SandboxSpec) {
    let old_network = old.map(|o| o.network.clone()).unwrap_or(Network::None);
    let rank = |network: &Network| match network {
        Network::None => 0,
        Network::Egress { .. } => 1,
        Network::Default => 2,
    };
    if std::mem::discriminant(&old_network) != std::mem::discriminant(&sandbox.network) {
        at.widens_if(
            rank(&sandbox.network) > rank(&old_network),
            SecurityChange::Network {
                old: old_network.clone(),
                new: sandbox.network.clone(),
            },
        );
    }
    let Network::Egress { destinations, .. } = &sandbox.network else {
        return;
    };
    let before = old_network.destinations();
    for destination in destinations {
        if !before.contains(destination) {
            at.widens(SecurityChange::EgressAdded {
                destination: destination.clone(),
            });
        }
    }
    for destination in before {
        if !destinations.contains(destination) {
            at.narrows(SecurityChange::EgressRemoved {
                destination: destination.clone(),
            });
        }
    }
}

/// Each mount added, changed (widening when it becomes read-write) or removed.
fn mounts(at: &mut At<'_>, old: Option<&SandboxSpec>, sandbox: &SandboxSpec) {
    let old_mounts: BTreeMap<&str, &MountSpec> = old
        .map(|o| o.mounts.iter().map(|m| (m.target.as_str(), m)).collect())
        .unwrap_or_default();
    for mount in &sandbox.mounts {
        match old_mounts.get(mount.target.as_str()) {
            None => at.widens(SecurityChange::MountAdded {
                source: mount.source.clone(),
                target: mount.target.clone(),
                access: mount.access,
            }),
            Some(previous)
                if previous.access != mount.access || previous.source != mount.source =>
            {
                at.widens_if(
                    mount.access == Access::ReadWrite,
                    SecurityChange::MountChanged {
                        target: mount.target.clone(),
                        old_source: previous.source.clone(),
                        old_access: previous.access,
                        source: mount.source.clone(),
                        access: mount.access,
                    },
                )
            }
            _ => {}
        }
    }
    for removed in old_mounts
        .keys()
        .filter(|t| !sandbox.mounts.iter().any(|m| m.target == **t))
    {
        at.narrows(SecurityChange::MountRemoved {
            target: removed.to_string(),
        });
    }
}

/// Capabilities, new privileges, the root filesystem, the user namespace, and resource
/// limits this engine does not enforce.
fn privileges(at: &mut At<'_>, old: Option<&SandboxSpec>, sandbox: &SandboxSpec, new: &Desired) {
    let old_add: BTreeSet<&String> = old.map(|o| o.cap_add.iter().collect()).unwrap_or_default();
    for cap in sandbox.cap_add.iter().filter(|c| !old_add.contains(c)) {
        at.widens(SecurityChange::CapabilityAdded {
            capability: cap.clone(),
        });
    }
    let drops_all = |drop: &[String]| drop.iter().any(|c| c == "ALL");
    if let Some(old) = old
        && drops_all(&old.cap_drop)
        && !drops_all(&sandbox.cap_drop)
    {
        at.widens(SecurityChange::CapabilitiesNotAllDropped);
    }
    if old.is_none_or(|o| o.no_new_privileges) && !sandbox.no_new_privileges {
        at.widens(SecurityChange::NewPrivilegesAllowed);
    }
    if old.is_some_and(|o| o.read_only) && !sandbox.read_only {
        at.widens(SecurityChange::RootFilesystemWritable);
    }
    let host_root = matches!(sandbox.user_namespace, UserNamespace::HostRoot { .. });
    if host_root || old.is_none_or(|o| o.user_namespace != sandbox.user_namespace) {
        at.widens_if(
            host_root,
            SecurityChange::UserNamespace {
                mode: sandbox.user_namespace,
            },
        );
    }
    if !sandbox.limits_enforced {
        at.widens(SecurityChange::LimitsNotEnforced {
            pids_limit: sandbox.pids_limit,
            memory: sandbox.memory.clone(),
            why: if new.engine.rootless && new.engine.cgroups == Cgroups::V1 {
                LimitsWhy::RootlessCgroupsV1
            } else {
                LimitsWhy::NoControllers
            },
        });
    }
}

/// A server's secrets are readable by the other servers of its sandbox (one user, one
/// `/proc`).
fn secrets_shared(out: &mut Deltas, image: &str, new: &Desired) {
    let servers: Vec<&ServerSpec> = new.servers.values().filter(|s| s.image == image).collect();
    for server in &servers {
        let secrets: Vec<String> = server
            .env
            .iter()
            .filter(|(_, v)| matches!(v, Value::Secret { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        let others: Vec<String> = servers
            .iter()
            .filter(|o| o.name != server.name)
            .map(|o| o.name.clone())
            .collect();
        if !secrets.is_empty() && !others.is_empty() {
            out.at(Address::server(&format!("{image}.{}", server.name)))
                .widens(SecurityChange::SecretsShared {
                    server: server.name.clone(),
                    secrets,
                    others,
                });
        }
    }
}

/// A server added, and each secret it is newly passed.
fn server(at: &mut At<'_>, old: Option<&ServerSpec>, server: &ServerSpec) {
    if old.is_none() {
        at.widens(SecurityChange::ServerAdded {
            server: server.name.clone(),
        });
    }
    let old_secrets: BTreeSet<&String> = old
        .map(|o| {
            o.env
                .iter()
                .filter(|(_, v)| matches!(v, Value::Secret { .. }))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    for (name, value) in &server.env {
        if let Value::Secret { template, .. } = value
            && !old_secrets.contains(name)
        {
            at.widens(SecurityChange::SecretPassed {
                template: template.clone(),
                name: name.clone(),
            });
        }
    }
}

/// The tools an agent may call, and where its API key is sent.
fn agent(at: &mut At<'_>, old: Option<&AgentSpec>, agent: &AgentSpec) {
    match (old.map(|o| &o.tools), &agent.tools) {
        (None, None) => at.widens(SecurityChange::EveryToolAllowed),
        (None, Some(tools)) => at.widens(SecurityChange::ToolsAllowed {
            patterns: tools.clone(),
        }),
        (Some(Some(_)), None) => at.widens(SecurityChange::AllowListRemoved),
        (Some(Some(old_tools)), Some(tools)) => {
            let added: Vec<String> = tools
                .iter()
                .filter(|t| !old_tools.contains(t))
                .cloned()
                .collect();
            if !added.is_empty() {
                at.widens(SecurityChange::ToolsNewlyAllowed { patterns: added });
            }
        }
        (Some(None), _) => {}
    }
    let Some(key) = &agent.api_key else {
        return;
    };
    match old {
        Some(old) if old.base_url != agent.base_url => at.widens(SecurityChange::ApiKeyMoved {
            key: key.clone(),
            url: agent.base_url.clone(),
            old_url: old.base_url.clone(),
        }),
        None => at.widens(SecurityChange::ApiKeySent {
            key: key.clone(),
            url: agent.base_url.clone(),
        }),
        _ => {}
    }
}
