//! `outrig init` writes a config that validates, and never overwrites without `--force`.

use crate::context::TestContext;

#[test]
fn init_writes_a_valid_project() {
    let context = TestContext::new().env("OPENAI_API_KEY", "x");
    let run = context.run(&["init"]);
    assert_eq!(run.status, 0, "{}", run.all());
    for file in [
        "outrig.toml",
        "sandbox/Containerfile",
        ".outrig/outrig.schema.json",
    ] {
        assert!(context.path().join(file).is_file(), "{file} missing");
    }
    let config = std::fs::read_to_string(context.path().join("outrig.toml")).unwrap();
    assert!(config.starts_with("#:schema ./.outrig/outrig.schema.json\n"));
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

/// Files a repository commits are 0644 and directories 0755 (with the usual umask 022, as
/// the test process has), not private to the user.
#[test]
fn init_files_are_readable_by_everyone() {
    use std::os::unix::fs::PermissionsExt;
    let context = TestContext::new();
    let run = context.run(&["init"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let mode = |path: &str| {
        std::fs::metadata(context.path().join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    for file in [
        "outrig.toml",
        "sandbox/Containerfile",
        ".outrig/outrig.schema.json",
    ] {
        assert_eq!(mode(file), 0o644, "{file}");
    }
    for dir in ["sandbox", ".outrig"] {
        assert_eq!(mode(dir), 0o755, "{dir}");
    }
    // `--force` keeps a mode the user chose.
    std::fs::set_permissions(
        context.path().join("outrig.toml"),
        std::fs::Permissions::from_mode(0o664),
    )
    .unwrap();
    let run = context.run(&["init", "--force"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert_eq!(mode("outrig.toml"), 0o664);
}

#[test]
fn init_names_the_project() {
    let context = TestContext::new();
    let dir = context.path().join("My Tools_2");
    std::fs::create_dir(&dir).unwrap();
    let run = context.run(&["init", "My Tools_2"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let config = std::fs::read_to_string(dir.join("outrig.toml")).unwrap();
    assert!(config.contains("\nproject = \"my-tools-2\"\n"), "{config}");

    let run = context.run(&["init", "--force", "--project", "team-tools", "My Tools_2"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let config = std::fs::read_to_string(dir.join("outrig.toml")).unwrap();
    assert!(config.contains("\nproject = \"team-tools\"\n"), "{config}");

    let run = context.run(&["init", "--force", "--project", "Team Tools", "My Tools_2"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("`--project Team Tools` is not a valid project name"),
        "{}",
        run.stderr
    );
    let config = std::fs::read_to_string(dir.join("outrig.toml")).unwrap();
    assert!(
        config.contains("project = \"team-tools\""),
        "nothing written"
    );
}

/// Right after `init`, with no variable set: validate passes (the unset key is a warning
/// that says which command needs it) and `plan` plans; the key is needed only when the
/// agent runs.
#[test]
fn a_fresh_init_plans_without_any_variable() {
    let context = TestContext::new();
    let run = context.run(&["init"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("export `OPENAI_API_KEY` before `outrig apply` runs an agent"),
        "{}",
        run.stderr
    );
    if !crate::podman::prerequisites(false) {
        return;
    }
    let sessions = context.path().join("sessions");
    let run = context.run(&[
        "plan",
        "--json",
        "--session-root",
        sessions.to_str().unwrap(),
    ]);
    assert_eq!(run.status, 0, "{}", run.all());
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["agent"], "assistant");
    assert!(!run.stdout.contains("OPENAI_API_KEY=") && !run.stderr.contains("not set"));
    let run = context.run(&["apply", "--auto-approve", "--prompt", "hi"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr.contains("`OPENAI_API_KEY` is empty or unset"),
        "{}",
        run.stderr
    );
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let context = TestContext::new();
    context.write("outrig.toml", "# mine\n");
    let run = context.run(&["init"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("already exist"), "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(context.path().join("outrig.toml")).unwrap(),
        "# mine\n"
    );
    assert!(
        !context.path().join("sandbox").exists(),
        "nothing is written on refusal"
    );
    let run = context.run(&["init", "--force"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert_ne!(
        std::fs::read_to_string(context.path().join("outrig.toml")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn init_flags_shape_the_config() {
    let context = TestContext::new();
    let run = context.run(&[
        "init",
        "sub",
        "--base-image",
        "docker.io/library/debian:bookworm-slim",
        "--network",
        "default",
        "--workspace-access",
        "read-only",
        "--provider-url",
        "http://127.0.0.1:11434/v1",
        "--api-key-env",
        "none",
        "--model",
        "qwen2.5-coder:7b",
    ]);
    assert_eq!(run.status, 1, "the directory does not exist yet");
    std::fs::create_dir(context.path().join("sub")).unwrap();
    let run = context.run(&[
        "init",
        "sub",
        "--base-image",
        "docker.io/library/debian:bookworm-slim",
        "--network",
        "default",
        "--workspace-access",
        "read-only",
        "--provider-url",
        "http://127.0.0.1:11434/v1",
        "--api-key-env",
        "none",
        "--model",
        "qwen2.5-coder:7b",
    ]);
    assert_eq!(run.status, 0, "{}", run.all());
    let config = std::fs::read_to_string(context.path().join("sub/outrig.toml")).unwrap();
    assert!(config.contains("pull = \"missing\""));
    assert!(config.contains("network = \"default\""));
    assert!(config.contains("access = \"read-only\""));
    assert!(!config.contains("api-key"));
    assert!(config.contains("identifier = \"qwen2.5-coder:7b\""));
    let run = context.run(&["validate", "--config", "sub"]);
    assert_eq!(run.status, 0, "{}", run.all());
}

#[test]
fn init_rejects_a_key_passed_as_a_variable_name() {
    let context = TestContext::new();
    let run = context.run(&["init", "--api-key-env", "sk-abc123"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("not an environment variable name"),
        "{}",
        run.stderr
    );
    assert!(!context.path().join("outrig.toml").exists());
}

/// `--ca-bundle` copies a PEM bundle beside the Containerfile, which installs it before any
/// download; a file without certificates is refused and nothing is written.
#[test]
fn init_trusts_a_given_ca_bundle() {
    let context = TestContext::new();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    context.write("corp.pem", pem);
    context.write("not-a-cert.txt", "hello\n");
    let run = context.run(&["init", "--ca-bundle", "not-a-cert.txt"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("holds no PEM certificate"),
        "{}",
        run.stderr
    );
    assert!(!context.path().join("outrig.toml").exists());

    let run = context.run(&["init", "--ca-bundle", "corp.pem"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let copied = std::fs::read_to_string(context.path().join("sandbox/ca-bundle.crt")).unwrap();
    assert_eq!(copied, pem);
    let containerfile =
        std::fs::read_to_string(context.path().join("sandbox/Containerfile")).unwrap();
    let copy = containerfile
        .find("COPY ca-bundle.crt /etc/ssl/certs/ca-certificates.crt")
        .expect("the bundle is installed");
    assert!(copy < containerfile.find("RUN apt-get update").unwrap());
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 0, "{}", run.all());
}
