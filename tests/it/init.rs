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
