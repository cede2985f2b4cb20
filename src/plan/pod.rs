//! The plan of a gateway inside a pod exported with `outrig export kube`: the pod is the
//! sandbox, so nothing is built, pulled or started but the servers, which run as processes
//! of the gateway's own container, each through `outrig exec-server` (see
//! [`super::desired::Desired::pod_exec_command`]).

use super::desired::{Desired, Transport};
use super::{Action, Address, LockState, Operation, Plan, Reason, Step};
use crate::podman::command::Arg;

/// The name the servers' container goes by in the pod's plan and session record.
pub const POD_CONTAINER: &str = "pod";

/// The pod's plan for `desired`: one step per server, started by the binary at `outrig`;
/// with egress, through the proxy Service `proxy`.
pub fn plan(desired: &Desired, outrig: &str, proxy: Option<&str>, config_text: &str) -> Plan {
    let steps: Vec<Step> = desired
        .servers
        .keys()
        .filter_map(|key| {
            let command = desired.pod_exec_command(outrig, key, proxy)?;
            Some(Step {
                address: Address::server(key),
                action: Action::Create,
                reasons: vec![Reason::NothingApplied],
                operation: Some(Operation::StartServer {
                    container: Arg::Text(POD_CONTAINER.to_string()),
                    transport: Transport::PassedPipes,
                    command,
                }),
                diff: None,
            })
        })
        .collect();
    Plan {
        format_version: super::FORMAT_VERSION,
        outrig_version: env!("CARGO_PKG_VERSION").to_string(),
        project: desired.project.clone(),
        agent: desired.agent.clone(),
        config_digest: super::diff::config_digest(config_text, desired),
        last_applied_session: None,
        summary: super::diff::summary(&steps),
        steps,
        security_deltas: Vec::new(),
        lock: LockState::Absent,
        desired: desired.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Value;

    #[test]
    fn in_a_pod_only_the_servers_start_each_through_outrig_with_its_own_variables() {
        let mut desired = super::super::tests::fixture();
        let key = desired.servers.keys().next().unwrap().clone();
        desired.servers.get_mut(&key).unwrap().env.insert(
            "API_TOKEN".into(),
            Value::Secret {
                template: "${TOKEN}".into(),
                fingerprint: "f1".into(),
            },
        );
        let plan = plan(
            &desired,
            "/opt/outrig/outrig",
            Some("outrig-demo-tools-proxy"),
            "",
        );
        assert_eq!(plan.steps.len(), desired.servers.len());
        assert!(plan.steps.iter().all(|s| matches!(
            s.operation,
            Some(Operation::StartServer {
                transport: Transport::PassedPipes,
                ..
            })
        )));
        let step = plan
            .steps
            .iter()
            .find(|s| s.address == Address::server(&key))
            .unwrap();
        let command = step.operation.as_ref().unwrap().command();
        assert_eq!(command.program, "/opt/outrig/outrig");
        let shown = command.shown_args().join(" ");
        assert!(
            shown.starts_with("exec-server --workdir /workspace --env OUTRIG_SERVER="),
            "{shown}"
        );
        assert!(
            shown.contains("--env HTTP_PROXY=http://outrig-demo-tools-proxy:3128"),
            "{shown}"
        );
        // The secret is its name alone in the argv; its value is resolved, from the
        // gateway's environment, only when the command is bound.
        assert!(shown.contains("--env API_TOKEN --"), "{shown}");
        assert!(command.has_secrets());
    }
}
