//! `outrig export kube` proven on a real engine: `podman kube play` of the exported Pod,
//! its ConfigMap and workspace claim (with the Secrets created as podman secrets) serves
//! the quick start's tools to the Python SDK over Streamable HTTP, behind the token, from
//! a pod that has no way out; `podman kube down` leaves nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gateway::{REAL_SERVERS, clients_installed, project, python_client};
use crate::podman::{Cleanup, podman, prerequisites, rand_suffix};
use outrig::podman::{Podman, Runtime};

const SECRET: &str = "s3cr3t-value";
const TOKEN: &str = "kube-play-token-0123456789abcdef";

/// podman, its stdout; the test fails with its stderr when it fails.
fn run(args: &[&str]) -> String {
    Podman
        .run(&podman(args))
        .unwrap_or_else(|e| panic!("podman {args:?}: {e}"))
        .stdout
}

/// A podman secret in the form `kube play` of podman 4 reads for `secretKeyRef`: a JSON
/// object of base64 values.
fn podman_secret(name: &str, keys: &[(&str, &str)]) {
    let base64 = |value: &str| {
        let mut child = std::process::Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(k, v)| (k.to_string(), json!(base64(v))))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret.json");
    std::fs::write(&file, Value::Object(data).to_string()).unwrap();
    let _ = Podman.run(&podman(&["secret", "rm", name]));
    run(&["secret", "create", name, file.to_str().unwrap()]);
}

#[test]
fn an_exported_pod_serves_its_tools_under_kube_play() {
    if !prerequisites(true) || !clients_installed() {
        return;
    }
    // The time server also takes a secret, which the pod reads from its Secret.
    let servers = REAL_SERVERS.replace(
        r#"env = { PYTHONPATH = "/opt/mcp/python" }"#,
        r#"env = { PYTHONPATH = "/opt/mcp/python", TIME_TOKEN = "${API_TOKEN}" }"#,
    );
    let (context, name, _sessions, _cleanup) = project("e2e-kube", &servers);
    let locked = context.run(&["lock"]);
    assert_eq!(locked.status, 0, "{}", locked.all());

    // The gateway image: this outrig, where the init container copies it from.
    let suffix = rand_suffix();
    let gateway_image = format!("localhost/outrig-e2e-gateway:{suffix}");
    let network = format!("outrig-e2e-kube-{suffix}");
    let build = tempfile::tempdir().unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_outrig"), build.path().join("outrig")).unwrap();
    std::fs::write(
        build.path().join("Containerfile"),
        "FROM localhost/outrig-proxy:bookworm\nCOPY outrig /usr/local/bin/outrig\n",
    )
    .unwrap();
    run(&[
        "build",
        "--pull=never",
        "--tag",
        &gateway_image,
        build.path().to_str().unwrap(),
    ]);

    let export = context.run(&[
        "export",
        "kube",
        "--out",
        "kube",
        "--gateway-image",
        &gateway_image,
    ]);
    assert_eq!(export.status, 0, "{}", export.all());
    let files: Vec<std::path::PathBuf> = {
        let mut files: Vec<_> = std::fs::read_dir(context.path().join("kube"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(SECRET), "{}: {text}", file.display());
    }
    assert!(!export.stdout.contains(SECRET) && !export.stderr.contains(SECRET));

    // What `kube play` runs: the config, the workspace claim and the pod (it has no
    // Namespace, Service or NetworkPolicy; the pod's network stands in for the policy).
    let played: Vec<String> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            ["-configmap-", "-persistentvolumeclaim-", "-pod-"]
                .iter()
                .any(|kind| name.contains(kind))
        })
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(played.len(), 3, "{files:?}");
    let kube_file = context.path().join("played.yaml");
    std::fs::write(&kube_file, played.join("---\n")).unwrap();
    let pod = outrig::plan::kube::dns_label(&format!("outrig-{name}-tools"));
    podman_secret(&format!("{pod}-token"), &[("token", TOKEN)]);
    podman_secret(&format!("{pod}-env"), &[("API_TOKEN", SECRET)]);
    let kube = kube_file.to_str().unwrap().to_string();
    let _down = Cleanup(vec![
        podman(&["kube", "down", &kube]),
        podman(&["pod", "rm", "--force", "--time", "0", &pod]),
        podman(&["secret", "rm", &format!("{pod}-token")]),
        podman(&["secret", "rm", &format!("{pod}-env")]),
        podman(&["network", "rm", "--force", &network]),
        podman(&["volume", "rm", "--force", &format!("{pod}-workspace")]),
        podman(&["volume", "rm", "--force", &format!("{pod}-config")]),
        podman(&["rmi", "--force", &gateway_image]),
    ]);
    // `network = "none"`: an internal network, which the host reaches and nothing leaves.
    run(&["network", "create", "--internal", &network]);
    let started = Instant::now();
    run(&["kube", "play", "--network", &network, &kube]);
    let address = run(&[
        "inspect",
        &format!("{pod}-gateway"),
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
    ])
    .trim()
    .to_string();
    assert!(!address.is_empty(), "the pod has no address on {network}");
    let url = format!("http://{address}:8080/mcp");
    while std::net::TcpStream::connect_timeout(
        &format!("{address}:8080").parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the pod's gateway did not listen: {}",
            run(&["logs", &format!("{pod}-gateway")])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // As a client in the cluster would, by the Service's name (the gateway refuses other
    // Host headers: DNS rebinding protection).
    let calls = json!([["time__get_current_time", {"timezone": "UTC"}]]);
    let service = format!("{pod}.outrig-{name}.svc:8080");
    let out = python_client(
        &context,
        "http",
        &calls,
        &[&url],
        &[("MCP_TOKEN", TOKEN), ("MCP_HOST", &service)],
    );
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for expected in [
        "time__get_current_time",
        "fs__read_text_file",
        "everything__echo",
    ] {
        assert!(tools.contains(&expected), "{expected} in {tools:?}");
    }
    assert!(
        out["results"][0].to_string().contains("UTC"),
        "{}",
        out["results"][0]
    );
    // Without the token: refused.
    let refused = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Host: {service}"), &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "401");

    // The egress probe: a test host on podman's default network answers the host, never
    // the pod.
    let host = format!("outrig-e2e-kube-host-{suffix}");
    let _host = Cleanup(vec![podman(&["rm", "--force", "--time", "0", &host])]);
    run(&[
        "run",
        "--detach",
        "--rm",
        "--pull=never",
        "--name",
        &host,
        "--network",
        "podman",
        crate::podman::BASE_IMAGE,
        "python3",
        "-m",
        "http.server",
        "8000",
    ]);
    let host_address = run(&[
        "inspect",
        &host,
        "--format",
        "{{.NetworkSettings.Networks.podman.IPAddress}}",
    ])
    .trim()
    .to_string();
    let probe = format!(
        "import socket; socket.create_connection(('{host_address}', 8000), timeout=3); print('reached')"
    );
    let reached = |from: &[&str]| {
        let mut args = from.to_vec();
        args.extend(["python3", "-c", probe.as_str()]);
        Podman.run(&podman(&args)).is_ok()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reached(&[
        "run",
        "--rm",
        "--pull=never",
        "--network",
        "podman",
        crate::podman::BASE_IMAGE,
    ]) {
        assert!(Instant::now() < deadline, "the test host never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !reached(&["exec", &format!("{pod}-gateway")]),
        "the pod reached a host outside: its network must have no way out"
    );

    // Down: nothing of the pod is left.
    run(&["kube", "down", &kube]);
    let left = run(&["ps", "--all", "--quiet", "--filter", &format!("pod={pod}")]);
    assert!(left.trim().is_empty(), "{left}");
}
