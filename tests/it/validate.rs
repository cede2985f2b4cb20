//! `outrig validate` on inputs of every kind.

use crate::context::TestContext;

/// Five different mistakes, five diagnostics, each at the right line and column.
#[test]
fn five_mistakes_give_five_diagnostics() {
    let context = TestContext::new();
    context.write("sandbox/Containerfile", "FROM scratch\n");
    context.write(
        "outrig.toml",
        r#"[images.tools]
containerfile = "sandbox/Containerfile"
netwrok = "none"
pids-limit = 2

[images.tools.mcp.time]
command = ["python3"]
call-timeout = "soon"

[providers.local]
base-url = "http://127.0.0.1:8080/v1"

[models.small]
provider = "locl"
identifier = "m"

[agents.coder]
model = "small"
image = "tols"
"#,
    );
    let run = context.run(&["validate", "--format", "json"]);
    assert_eq!(run.status, 1, "{}", run.all());
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["valid"], false);
    let found: Vec<(String, u64, u64)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["start"]["line"].as_u64().unwrap(),
                d["start"]["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("unknown-key".to_string(), 3, 1),
            ("out-of-range".to_string(), 4, 14),
            ("invalid-format".to_string(), 8, 16),
            ("unknown-reference".to_string(), 14, 12),
            ("unknown-reference".to_string(), 19, 9),
        ],
        "{}",
        run.stdout
    );
    let helps: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["help"].as_str())
        .collect();
    assert!(helps.contains(&"did you mean `network`?"), "{helps:?}");
    assert!(helps.contains(&"did you mean `local`?"), "{helps:?}");
    assert!(helps.contains(&"did you mean `tools`?"), "{helps:?}");

    // The human format shows the same five, with locations.
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 1);
    for location in [
        "outrig.toml:3:1",
        "outrig.toml:4:14",
        "outrig.toml:8:16",
        "outrig.toml:14:12",
        "outrig.toml:19:9",
    ] {
        assert!(
            run.stderr.contains(location),
            "{location} missing:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("is invalid: 5 errors"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_valid_config_exits_zero_and_prints_json_on_stdout() {
    let context = TestContext::new();
    context.write(
        "outrig.toml",
        "[images.base]\nfrom = \"localhost/outrig-base:bookworm\"\n\
         [images.base.mcp.time]\ncommand = [\"python3\", \"-m\", \"mcp_server_time\"]\n",
    );
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("valid: `outrig.toml`"),
        "{}",
        run.stderr
    );
    let run = context.run(&["validate", "--format", "json"]);
    assert_eq!(run.status, 0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["diagnostics"], serde_json::json!([]));
}

/// Hostile and broken inputs: each is a clear error with exit 1, never a panic or hang.
#[test]
fn garbage_of_every_kind_is_a_clear_error() {
    let context = TestContext::new();
    let big_line = format!("x = \"{}\"\n", "a".repeat(100));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "defines no images"),
        ("whitespace", b"\n\n   \n# only a comment\n".to_vec(), "defines no images"),
        ("binary", (0..=255u8).cycle().take(4096).collect(), "not UTF-8"),
        ("nul bytes", b"a = \"\0\"\n".to_vec(), "invalid TOML"),
        ("ten megabytes", big_line.repeat(100_000).into_bytes(), "at most 4 MiB"),
        (
            "deep dotted key",
            format!("[{}]\nx = 1\n", vec!["a"; 5000].join(".")).into_bytes(),
            "error",
        ),
        ("deep arrays", format!("x = {}", "[".repeat(100_000)).into_bytes(), "invalid TOML"),
        ("deep inline tables", format!("x = {}", "{a=".repeat(100_000)).into_bytes(), "invalid TOML"),
        (
            "wrong types everywhere",
            b"project = 1\nworkspace = []\nimages = \"x\"\nproviders = 2.5\nmodels = true\nagents = 1979-05-27\ndefault-agent = {}\nsession-root = [1]\nengine = 0\n".to_vec(),
            "must be a table",
        ),
        (
            "wrong types inside",
            b"[images.a]\nfrom = 1\nnetwork = []\ncap-add = \"x\"\ncpus = \"fast\"\nmounts = [1]\nmcp = { s = { command = \"sh\" } }\n".to_vec(),
            "must be",
        ),
        ("nan", b"[images.a]\nfrom = \"x\"\ncpus = nan\n".to_vec(), "must be a number"),
        ("huge integer", b"[images.a]\nfrom = \"x\"\npids-limit = 9223372036854775807\n".to_vec(), "at most"),
    ];
    for (name, bytes, expected) in cases {
        context.write("outrig.toml", &bytes);
        let started = std::time::Instant::now();
        let run = context.run(&["validate"]);
        assert_eq!(run.status, 1, "{name}: {}", run.all());
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{name}: expected `{expected}` in\n{}",
            run.stderr
        );
        assert!(
            started.elapsed().as_secs() < 30,
            "{name} took {:?}",
            started.elapsed()
        );
        let json = context.run(&["validate", "--format", "json"]);
        assert_eq!(json.status, 1, "{name}");
        if !json.stdout.is_empty() {
            serde_json::from_str::<serde_json::Value>(&json.stdout)
                .unwrap_or_else(|e| panic!("{name}: bad JSON {e}"));
        }
    }
}

/// A secret value never appears in any output, whether referenced correctly or pasted
/// into the file by mistake.
#[test]
fn secrets_never_appear_in_output() {
    let secret = "s3cr3t-value";
    let context = TestContext::new().env("API_TOKEN", secret);
    context.write(
        "outrig.toml",
        r#"[images.tools]
from = "localhost/outrig-base:bookworm"

[images.tools.mcp.time]
command = ["python3", "-m", "mcp_server_time"]
env = { API_TOKEN = "${API_TOKEN}", OTHER = "$API_TOKEN" }

[providers.p]
base-url = "https://example.invalid/v1"
api-key = "${API_TOKEN}"
"#,
    );
    for format in ["human", "json"] {
        let run = context.run(&["validate", "--format", format]);
        assert_eq!(run.status, 1, "{}", run.all());
        assert!(!run.all().contains(secret), "{}", run.all());
    }
    // A key pasted into `api-key` is reported without being repeated.
    let pasted = "sk-proj-PASTEDKEY0123456789";
    context.write(
        "outrig.toml",
        format!(
            "[images.tools]\nfrom = \"x\"\n[providers.p]\nbase-url = \"https://a.invalid\"\napi-key = \"{pasted}\"\n"
        ),
    );
    for format in ["human", "json"] {
        let run = context.run(&["validate", "--format", format, "--color", "never"]);
        assert_eq!(run.status, 1);
        // Neither the message nor the snippet repeats it: the snippet masks it.
        assert!(!run.all().contains("PASTEDKEY"), "{}", run.all());
        if format == "human" {
            assert!(run.stderr.contains("api-key = \"***"), "{}", run.stderr);
        }
    }
}

#[test]
fn warnings_alone_keep_the_config_valid() {
    let context = TestContext::new();
    context.write(
        "outrig.toml",
        "[images.a]\nfrom = \"x\"\n[images.a.mcp.s]\ncommand = [\"s\"]\nenv = { T = \"${SURELY_UNSET_VAR}\" }\n",
    );
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 0, "{}", run.all());
    assert!(
        run.stderr.contains("warning[unset-variable]"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(1 warning)"), "{}", run.stderr);
}

#[test]
fn a_directory_or_missing_file_is_a_clear_error() {
    let context = TestContext::new();
    let run = context.run(&["validate", "--config", "nope.toml"]);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains("cannot read `nope.toml`"),
        "{}",
        run.stderr
    );
    std::fs::create_dir(context.path().join("empty-dir")).unwrap();
    let run = context.run(&["validate", "--config", "empty-dir"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
}

/// Many problems: the first 50 are shown in full and the rest counted; JSON has them all.
#[test]
fn many_problems_show_fifty_and_count_the_rest() {
    let context = TestContext::new();
    let mut text = String::new();
    for index in 0..30 {
        text.push_str(&format!(
            "[images.image-{index}]\nfrom = \"x\"\nnetwrok = \"none\"\npids-limit = \"many\"\n\
             [images.image-{index}.mcp.time]\ncommand = [\"python3\"]\n"
        ));
    }
    context.write("outrig.toml", text);
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert_eq!(run.stderr.matches("error[").count(), 50, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("... and 10 more diagnostics not shown (`--format json` lists every one)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("is invalid: 60 errors"),
        "{}",
        run.stderr
    );
    let json = context.run(&["validate", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["diagnostics"].as_array().unwrap().len(), 60);
    // Commands that load the config show the same first 50.
    let plan = context.run(&["plan"]);
    assert_eq!(plan.stderr.matches("error[").count(), 50, "{}", plan.stderr);
    assert!(
        plan.stderr.contains("and 10 more diagnostics not shown"),
        "{}",
        plan.stderr
    );
}

/// A model's `fallback` must name other models that exist.
#[test]
fn fallbacks_name_other_existing_models() {
    let context = TestContext::new();
    context.write("sandbox/Containerfile", "FROM scratch\n");
    context.write(
        "outrig.toml",
        r#"[images.tools]
containerfile = "sandbox/Containerfile"

[images.tools.mcp.time]
command = ["python3"]

[providers.local]
style = "anthropic"
base-url = "http://127.0.0.1:8080/v1"

[models.small]
provider = "local"
identifier = "m"
fallback = ["small", "larg"]

[models.large]
provider = "local"
identifier = "l"
fallback = ["small"]

[agents.coder]
model = "small"
image = "tools"
"#,
    );
    let run = context.run(&["validate"]);
    assert_eq!(run.status, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("error[invalid-fallback]: model `small` falls back to itself"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("no model named `larg`")
            && run.stderr.contains("did you mean `large`?"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("outrig.toml:14:13"), "{}", run.stderr);
}
