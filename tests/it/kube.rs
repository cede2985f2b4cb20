//! `outrig export kube` proven on a real engine: `podman kube play` of the exported Pod,
//! its ConfigMap and workspace claim (with the Secrets created as podman secrets) serves
//! the quick start's tools to the Python SDK over Streamable HTTP, behind the token, from
//! a pod that has no way out; `podman kube down` leaves nothing.

use std::time::{Duration, Instant};

use crate::gateway::test_host;

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

/// The kube tests play one at a time: podman 4 sometimes fails to start a played pod's
/// infra container ("Starting some container dependencies") while another play sets up
/// its networks.
static PLAYING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `podman kube play` of `file` on `networks`; asked once more after a failure to start
/// the pod's dependencies, taking down what the first try left.
fn play(file: &str, networks: &[&str]) {
    let mut args = vec!["kube", "play"];
    for network in networks {
        args.extend(["--network", network]);
    }
    args.push(file);
    if let Err(error) = Podman.run(&podman(&args)) {
        assert!(
            error
                .stderr_tail
                .contains("Starting some container dependencies"),
            "podman {args:?}: {error}"
        );
        let _ = Podman.run(&podman(&["kube", "down", file]));
        run(&args);
    }
}

/// Removing the volumes `kube play` made for the exported pod `pod` (`kube down` leaves
/// them).
fn volumes_of(pod: &str) -> Vec<outrig::podman::PodmanCommand> {
    ["workspace", "config", "outrig", "tmp"]
        .iter()
        .map(|volume| podman(&["volume", "rm", "--force", &format!("{pod}-{volume}")]))
        .collect()
}

/// The gateway image: this outrig, where the pod's init container copies it from.
fn gateway_image(suffix: &str) -> String {
    let image = format!("localhost/outrig-e2e-gateway:{suffix}");
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
        &image,
        build.path().to_str().unwrap(),
    ]);
    image
}

/// The exported files whose names hold one of `kinds`, as one YAML stream, written to
/// `name` in the project.
fn played(context: &crate::context::TestContext, kinds: &[&str], name: &str) -> String {
    let mut files: Vec<_> = std::fs::read_dir(context.path().join("kube"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| {
            let file = f.file_name().unwrap().to_string_lossy().into_owned();
            kinds.iter().any(|kind| file.contains(kind))
        })
        .collect();
    files.sort();
    let all: Vec<_> = std::fs::read_dir(context.path().join("kube"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), kinds.len(), "{kinds:?} in {all:?}");
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let path = context.path().join(name);
    std::fs::write(&path, texts.join("---\n")).unwrap();
    path.to_str().unwrap().to_string()
}

/// The pod's address on `network`, once its gateway listens.
fn listening(pod: &str, network: &str) -> String {
    let address = run(&[
        "inspect",
        &format!("{pod}-gateway"),
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
    ])
    .trim()
    .to_string();
    assert!(!address.is_empty(), "the pod has no address on {network}");
    let started = Instant::now();
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
    address
}

#[test]
fn an_exported_pod_serves_its_tools_under_kube_play() {
    if !prerequisites(true) || !clients_installed() {
        return;
    }
    let _playing = PLAYING.lock().unwrap_or_else(|e| e.into_inner());
    // The time server also takes a secret, which the pod reads from its Secret.
    let servers = REAL_SERVERS.replace(
        r#"env = { PYTHONPATH = "/opt/mcp/python" }"#,
        r#"env = { PYTHONPATH = "/opt/mcp/python", TIME_TOKEN = "${API_TOKEN}" }"#,
    );
    let (context, name, _sessions, _cleanup) = project("e2e-kube", &servers);
    let locked = context.run(&["lock"]);
    assert_eq!(locked.status, 0, "{}", locked.all());

    let suffix = rand_suffix();
    let gateway_image = gateway_image(&suffix);
    let network = format!("outrig-e2e-kube-{suffix}");

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
    let kube = played(
        &context,
        &["-configmap-", "-persistentvolumeclaim-", "-pod-"],
        "played.yaml",
    );
    let pod = outrig::plan::kube::dns_label(&format!("outrig-{name}-tools"));
    podman_secret(&format!("{pod}-token"), &[("token", TOKEN)]);
    podman_secret(&format!("{pod}-env"), &[("API_TOKEN", SECRET)]);
    let mut down = vec![
        podman(&["kube", "down", &kube]),
        podman(&["pod", "rm", "--force", "--time", "0", &pod]),
        podman(&["secret", "rm", &format!("{pod}-token")]),
        podman(&["secret", "rm", &format!("{pod}-env")]),
        podman(&["network", "rm", "--force", &network]),
        podman(&["rmi", "--force", &gateway_image]),
    ];
    down.extend(volumes_of(&pod));
    let _down = Cleanup(down);
    // `network = "none"`: an internal network, which the host reaches and nothing leaves.
    run(&["network", "create", "--internal", &network]);
    play(&kube, &[&network]);
    let address = listening(&pod, &network);
    let url = format!("http://{address}:8080/mcp");
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

/// With an egress allow-list, the exported proxy Deployment (the same Squid configuration
/// `apply` runs) is the pod's only way out: a server's fetch of the listed test host
/// answers 200 through it, another host 403, and a direct connection finds no route.
/// `kube play` has no Services: the pod is pointed at the proxy's pod by name.
#[test]
fn an_exported_pod_goes_out_only_through_its_proxy() {
    if !prerequisites(true) || !clients_installed() {
        return;
    }
    let _playing = PLAYING.lock().unwrap_or_else(|e| e.into_inner());
    let suffix = rand_suffix();
    let (allowed, _allowed) = test_host(&format!("outrig-kube-allowed-{suffix}"));
    let (other, _other) = test_host(&format!("outrig-kube-other-{suffix}"));
    let name = format!("e2e-kube-egress-{suffix}");
    let context = crate::context::TestContext::new();
    let sessions = context.path().join(".sessions");
    let context = context.env("OUTRIG_SESSION_ROOT", sessions.to_str().unwrap());
    context.write(
        "outrig.toml",
        format!(
            "project = \"{name}\"\n\n[images.tools]\ncontainerfile = \"sandbox/Containerfile\"\n\
             egress = [\"{allowed}:8080\"]\n\n[images.tools.mcp.net]\n\
             command = [\"python3\", \"/opt/flood_server.py\"]\nenv = {{ FLOOD_NET = \"1\" }}\n"
        ),
    );
    context.write(
        "sandbox/Containerfile",
        "FROM localhost/outrig-base:bookworm\nCOPY flood_server.py /opt/flood_server.py\n",
    );
    std::fs::copy(
        crate::context::repo_root().join("tests/clients/flood_server.py"),
        context.path().join("sandbox/flood_server.py"),
    )
    .unwrap();
    let pod = outrig::plan::kube::dns_label(&format!("outrig-{name}-tools"));
    let proxy = format!("{pod}-proxy");
    let network = format!("outrig-e2e-kube-{suffix}");
    let gateway_image = gateway_image(&suffix);
    let _cleanup = Cleanup(vec![
        podman(&["rmi", "--force", &gateway_image]),
        podman(&["network", "rm", "--force", &network]),
        podman(&["secret", "rm", &format!("{pod}-token")]),
    ]);
    let locked = context.run(&["lock"]);
    assert_eq!(locked.status, 0, "{}", locked.all());
    let export = context.run(&[
        "export",
        "kube",
        "--out",
        "kube",
        "--gateway-image",
        &gateway_image,
    ]);
    assert_eq!(export.status, 0, "{}", export.all());
    let proxy_config = format!("-configmap-{proxy}");
    let proxy_file = played(&context, &[&proxy_config, "-deployment-"], "proxy.yaml");
    let config = format!("-configmap-{pod}-config");
    let sandbox_file = played(
        &context,
        &[&config, "-persistentvolumeclaim-", "-pod-"],
        "sandbox.yaml",
    );
    // kube play names the Deployment's pod `<deployment>-pod-0`, and has no Service.
    let sandbox_text = std::fs::read_to_string(&sandbox_file).unwrap();
    let pointed = sandbox_text.replace(
        &format!("value: {proxy}\n"),
        &format!("value: {proxy}-pod-0\n"),
    );
    assert_ne!(pointed, sandbox_text, "the pod names its proxy");
    std::fs::write(&sandbox_file, pointed).unwrap();
    podman_secret(&format!("{pod}-token"), &[("token", TOKEN)]);
    let mut down = vec![
        podman(&["kube", "down", &sandbox_file]),
        podman(&["kube", "down", &proxy_file]),
        podman(&["volume", "rm", "--force", &format!("{proxy}-tmp")]),
    ];
    down.extend(volumes_of(&pod));
    let _down = Cleanup(down);
    run(&["network", "create", "--internal", &network]);
    // The proxy on the sandbox's network and podman's; the sandbox on its own only.
    play(&proxy_file, &[&network, "podman"]);
    play(&sandbox_file, &[&network]);
    let address = listening(&pod, &network);
    let calls = json!([
        ["net__fetch", {"url": format!("http://{allowed}:8080/")}],
        ["net__fetch", {"url": format!("http://{other}:8080/")}],
        ["net__connect", {"host": allowed, "port": 8080}],
    ]);
    let service = format!("{pod}.outrig-{name}.svc:8080");
    let out = python_client(
        &context,
        "http",
        &calls,
        &[&format!("http://{address}:8080/mcp")],
        &[("MCP_TOKEN", TOKEN), ("MCP_HOST", &service)],
    );
    let text = |i: usize| {
        out["results"][i]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        text(0).starts_with("HTTP 200"),
        "listed: {}",
        out["results"][0]
    );
    assert_eq!(text(1), "HTTP 403", "unlisted: {}", out["results"][1]);
    assert!(
        text(2).starts_with("error:"),
        "direct: {}",
        out["results"][2]
    );
}
