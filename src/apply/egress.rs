//! A sandbox's egress proxy at apply: its addresses, its log followed into the session,
//! and the probes that prove the allow-list before any server starts.

use crate::error::Error;
use crate::plan::desired::Network;
use crate::plan::{Action, Plan};
use crate::podman::command::Binding;
use crate::session::Session;

use super::record::{run_blocking, run_step};
use super::{Context, progress};

/// The key of a sandbox's proxy among the session's containers.
pub(super) fn proxy_key(image: &str) -> String {
    format!("proxy.{image}")
}

/// A proxy that could not start: its image is missing (say how to get it), or rootless
/// podman cannot give containers a network here (say what it needs).
pub(super) fn proxy_error(error: Error, commands: &crate::plan::argv::ProxyCommands) -> Error {
    let text = error.render();
    if [
        "/dev/net/tun",
        "slirp4netns failed",
        "pasta failed",
        "rootless netns",
    ]
    .iter()
    .any(|symptom| text.contains(symptom))
    {
        return error
            .cause("this rootless podman cannot give containers a network (its network helper, slirp4netns or pasta, failed)")
            .hint("an egress list needs a network for the proxy: make /dev/net/tun usable by your user (or install pasta), or use rootful podman; `network = \"none\"` needs neither");
    }
    if !(text.contains("image not known") || text.contains("no such image")) {
        return error;
    }
    let image = &commands.proxy_image;
    error
        .cause(format!(
            "the egress proxy's image `{image}` is not in podman's store"
        ))
        .hint(
            "build it with `scripts/setup-podman.sh` (Squid from the Debian mirror), or point \
         `[engine] proxy-image` at an image with Squid, bash and getent",
        )
}

/// The proxy's addresses on the sandbox's internal network and on podman's default one.
pub(super) async fn proxy_addresses(
    context: &Context<'_>,
    container: &str,
    network: &str,
) -> Result<(String, String), Error> {
    let inspect = context
        .podman()
        .args(["container", "inspect", "--format", "json", container]);
    let stdout = run_blocking(&context.runtime, inspect)
        .await
        .map_err(|e| Error::new("cannot read the egress proxy's addresses").cause(e))?;
    let json: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        Error::new("cannot read the egress proxy's addresses")
            .cause(format!("podman container inspect printed no JSON: {e}"))
    })?;
    let networks = &json[0]["NetworkSettings"]["Networks"];
    let address = |name: &str| {
        networks[name]["IPAddress"]
            .as_str()
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    };
    match (address(network), address("podman")) {
        (Some(inside), Some(outside)) => Ok((inside, outside)),
        _ => Err(Error::new("the egress proxy has no address on its networks")
            .cause(format!(
                "podman reports no IP address for `{container}` on `{network}` and `podman`"
            ))
            .hint("rootless podman needs a network stack for containers (slirp4netns or pasta, and /dev/net/tun); `podman run --network podman` must work")),
    }
}

/// Copy the proxy's log into `logs/egress.jsonl` as it is written, one event per request;
/// anything else the proxy says goes to `logs/proxy-<image>.log`.
pub(super) fn follow_egress_log(
    context: &Context<'_>,
    session: &Session,
    image: &str,
    container: &str,
) {
    let follow = context.podman().args(["logs", "--follow", container]);
    let events = session.log_path("egress.jsonl");
    let other = session.log_path(&format!("proxy-{image}.log"));
    let runtime = context.runtime.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let open = |path: &std::path::Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let (Ok(mut events), Ok(mut other)) = (open(&events), open(&other)) else {
            return;
        };
        let _ = runtime.run_lines(
            &follow,
            &mut |line: &str| match crate::egress::parse_log_line(line) {
                Some(event) => {
                    if let Ok(text) = serde_json::to_string(&event) {
                        let _ = writeln!(events, "{text}");
                    }
                }
                None => {
                    let _ = writeln!(other, "{line}");
                }
            },
        );
    });
}

/// A session that served from a kept sandbox (`outrig mcp --attach`) copies what the kept
/// egress proxy logged while it ran into its own `logs/egress.jsonl`, once its servers
/// are stopped.
pub(super) async fn copy_kept_egress_log(plan: &Plan, session: &Session, context: &Context<'_>) {
    let Some(container) = &session.record.attached_to else {
        return;
    };
    let egress = plan
        .desired
        .sandboxes
        .values()
        .any(|s| matches!(s.network, Network::Egress { .. }));
    if !egress {
        return;
    }
    let logs = context
        .podman()
        .args(["logs", "--since", &session.record.started_at])
        .arg(crate::podman::verbs::proxy_container(container));
    let Ok(output) = run_blocking(&context.runtime, logs).await else {
        return;
    };
    let lines: Vec<String> = output
        .lines()
        .filter_map(crate::egress::parse_log_line)
        .filter_map(|event| serde_json::to_string(&event).ok())
        .collect();
    if !lines.is_empty() {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(session.log_path("egress.jsonl"))
        {
            let _ = writeln!(file, "{}", lines.join("\n"));
        }
    }
}

/// Prove the sandbox's allow-list before any server starts: from the sandbox's network
/// namespace, a listed destination is reached through the proxy, an unlisted one is
/// refused, and the proxy cannot be bypassed. Any probe that disagrees fails the apply.
pub(super) async fn prove_egress(
    session: &mut Session,
    context: &Context<'_>,
    address: &str,
    image: &str,
    commands: &crate::plan::argv::ProxyCommands,
    binding: &Binding<'_>,
) -> Result<(), Error> {
    progress(address, "proving the egress allow-list");
    let probe_address = format!("{address}.probe");
    let output = run_step(
        session,
        context,
        &probe_address,
        Action::Create,
        commands.probe.bind(binding)?,
    )
    .await?;
    let probes = crate::egress::read_probes(
        &output,
        &commands.listed,
        &commands.unlisted,
        commands.reach_required,
    );
    let failed: Vec<String> = probes
        .iter()
        .filter(|p| !p.passed)
        .map(|p| format!("{}: `{}` got {}", p.kind.promise(), p.target, p.observed))
        .collect();
    if let Some(record) = session.record.egress.get_mut(image) {
        record.probes = probes;
    }
    let _ = session.save();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::new(format!(
        "`{address}`: the egress allow-list did not hold, so nothing was started"
    ))
    .cause(failed.join("\n"))
    .hint(
        "a listed destination that cannot be reached is reported too: check the name, the \
         port and this machine's network; the probes are in session.json",
    ))
}
