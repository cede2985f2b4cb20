use crate::context::{TestContext, run_in_repo};

#[test]
fn help_and_version_exit_zero() {
    let help = run_in_repo(&["--help"]);
    assert_eq!(help.status, 0);
    for command in ["init", "validate", "schema"] {
        assert!(help.stdout.contains(command), "{}", help.stdout);
    }
    assert!(help.stdout.contains("Exit status"));
    let version = run_in_repo(&["--version"]);
    assert_eq!(version.status, 0);
    assert!(version.stdout.starts_with("outrig "));
}

#[test]
fn bad_flags_exit_one_with_a_message() {
    let run = run_in_repo(&["validate", "--no-such-flag"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("--no-such-flag"), "{}", run.stderr);
    let run = run_in_repo(&["validate", "--format", "yaml"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("human"), "{}", run.stderr);
}

#[test]
fn no_config_found_names_init() {
    let context = TestContext::new();
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("no `outrig.toml`"), "{}", run.stderr);
    assert!(run.stderr.contains("outrig init"), "{}", run.stderr);
}

#[test]
fn config_is_found_by_walking_up() {
    let context = TestContext::new();
    context.write("outrig.toml", "[images.base]\nfrom = \"localhost/x:y\"\n");
    let nested = context.path().join("a/b/c");
    std::fs::create_dir_all(&nested).unwrap();
    let run = context.run_in(&nested, &["validate"]);
    assert_eq!(run.status, 0, "{}", run.all());
}

#[test]
fn colour_only_when_asked_and_never_with_no_color() {
    let context = TestContext::new();
    context.write("outrig.toml", "[images.base]\nfrm = 1\n");
    // NO_COLOR is set by the test context: no escapes, even with a bad config.
    let run = context.run(&["validate"]);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    let run = context.run(&["validate", "--color", "always"]);
    assert!(run.stderr.contains('\u{1b}'), "{}", run.stderr);
}
