//! Every committed example: valid ones pass the schema and the loader; each invalid one
//! fails with the diagnostic in its snapshot.

use std::path::{Path, PathBuf};

use crate::context::{repo_root, run_in_repo};

fn valid_examples() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("outrig.toml"))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    found
}

fn invalid_examples() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples/invalid"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    found.sort();
    found
}

#[test]
fn valid_examples_pass_the_schema_and_load() {
    let examples = valid_examples();
    assert!(examples.len() >= 2, "{examples:?}");
    let cwd = repo_root();
    for path in examples {
        // The schema layer alone, with the committed schema file.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#:schema "),
            "{} lacks a #:schema line",
            path.display()
        );
        let value: toml_edit::DocumentMut = text.parse().unwrap();
        let json: serde_json::Value =
            serde_json::to_value(toml_edit::de::from_document::<serde_json::Value>(value).unwrap())
                .unwrap();
        let committed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("schema/outrig.schema.json")).unwrap(),
        )
        .unwrap();
        let validator = jsonschema::draft7::new(&committed).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        // The whole loader.
        let loaded = outrig::config::load(Some(&path), &cwd, &|_| true)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.render()));
        assert!(!loaded.config.images.is_empty());
    }
}

#[test]
fn invalid_examples_fail_with_their_snapshotted_diagnostic() {
    let examples = invalid_examples();
    assert!(examples.len() >= 10);
    for path in examples {
        let relative = path
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        let run = run_in_repo(&["validate", "--config", &relative]);
        assert_eq!(
            run.status,
            1,
            "{relative} should be invalid:\n{}",
            run.all()
        );
        assert!(run.stdout.is_empty(), "diagnostics belong on stderr");
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, run.stderr);
        });
    }
}

#[test]
fn invalid_examples_say_which_layer_in_their_name() {
    for path in invalid_examples() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            ["syntax-", "schema-", "semantic-"]
                .iter()
                .any(|p| name.starts_with(p)),
            "{name}: prefix the file with the layer that rejects it"
        );
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(
            first.starts_with("#:schema ../../schema/outrig.schema.json\n"),
            "{name}"
        );
    }
}

/// taplo (the engine of Even Better TOML) checks the examples against the committed
/// schema the way an editor does: valid examples pass, schema- and syntax-level mistakes
/// fail. Semantic mistakes are beyond any schema, so taplo accepts those.
#[test]
fn taplo_agrees_with_the_schema() {
    let Some(taplo) = editor_tool("node_modules/.bin/taplo") else {
        return;
    };
    let schema = format!(
        "file://{}",
        repo_root().join("schema/outrig.schema.json").display()
    );
    let check = |paths: &[std::path::PathBuf]| {
        std::process::Command::new(&taplo)
            .args(["check", "--schema", &schema])
            .args(paths)
            .current_dir(repo_root())
            .output()
            .expect("taplo runs")
    };
    let output = check(&valid_examples());
    assert!(
        output.status.success(),
        "taplo rejects a valid example:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One run over every invalid example; taplo names each file it rejects.
    let output = check(&invalid_examples());
    let report = String::from_utf8_lossy(&output.stderr);
    for path in invalid_examples() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rejected = report.contains(&format!(
            "invalid file error=schema validation failed path=\"{}\"",
            path.display()
        )) || report.contains(&format!(
            "invalid file error=syntax errors found path=\"{}\"",
            path.display()
        ));
        let expect_rejected = !name.starts_with("semantic-");
        assert_eq!(rejected, expect_rejected, "taplo on {name}:\n{report}");
    }
}

/// An editor engine installed by scripts/install-test-tools.sh (`relative` to the test-tools
/// directory); `None`, with a message, when it is missing outside CI.
fn editor_tool(relative: &str) -> Option<PathBuf> {
    let tools = std::env::var_os("OUTRIG_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-tools"));
    let path = tools.join(relative);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{relative} must run in CI; scripts/install-test-tools.sh installs it"
    );
    eprintln!("SKIPPED {relative} check: run scripts/install-test-tools.sh");
    None
}

/// `tombi lint`, offline (no schema store, no network), in `dir` with an empty cache: the
/// files' own `#:schema` lines are the only schema it has.
fn tombi(tombi: &Path, dir: &Path, files: &[PathBuf]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    std::process::Command::new(tombi)
        .args(["lint", "--offline"])
        .args(files)
        .current_dir(dir)
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("NO_COLOR", "1")
        .output()
        .expect("tombi runs")
}

/// Tombi, the other engine editors use for TOML, reads the examples' `#:schema` line and
/// agrees with taplo: valid examples pass, schema- and syntax-level mistakes fail, each file
/// on its own; semantic mistakes are beyond any schema.
#[test]
fn tombi_agrees_with_the_schema() {
    let Some(tombi_path) = editor_tool("py/bin/tombi") else {
        return;
    };
    let output = tombi(&tombi_path, &repo_root(), &valid_examples());
    assert!(
        output.status.success(),
        "tombi rejects a valid example:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for path in invalid_examples() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let output = tombi(&tombi_path, &repo_root(), std::slice::from_ref(&path));
        let expect_rejected = !name.starts_with("semantic-");
        assert_eq!(
            !output.status.success(),
            expect_rejected,
            "tombi on {name}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The `#:schema` line `outrig init` writes serves both editors: taplo and Tombi accept the
/// fresh config and flag a typo'd key in it, each at the key.
#[test]
fn both_editors_check_an_init_config() {
    let (Some(taplo), Some(tombi_path)) = (
        editor_tool("node_modules/.bin/taplo"),
        editor_tool("py/bin/tombi"),
    ) else {
        return;
    };
    let context = crate::context::TestContext::new();
    let run = context.run(&["init"]);
    assert_eq!(run.status, 0, "{}", run.all());
    let config = context.path().join("outrig.toml");
    let taplo_check = || {
        std::process::Command::new(&taplo)
            .args(["check", "outrig.toml"])
            .current_dir(context.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("taplo runs")
    };
    let files = [config.clone()];
    assert!(taplo_check().status.success());
    assert!(tombi(&tombi_path, context.path(), &files).status.success());

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\nnetwork = ", "\nnetwrk = ")).unwrap();
    let taplo_out = taplo_check();
    assert!(!taplo_out.status.success());
    assert!(
        String::from_utf8_lossy(&taplo_out.stderr).contains("'netwrk' was unexpected"),
        "{}",
        String::from_utf8_lossy(&taplo_out.stderr)
    );
    let tombi_out = tombi(&tombi_path, context.path(), &files);
    assert!(!tombi_out.status.success());
    let report = String::from_utf8_lossy(&tombi_out.stderr);
    assert!(
        report.contains("\"netwrk\" is not allowed") && report.contains("outrig.toml:"),
        "{report}"
    );
}
