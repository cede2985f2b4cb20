//! The pure plan function over many combinations of desired, observed and last applied
//! state, with the human and JSON views snapshotted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::desired::{
    AgentSpec, BuildSpec, Desired, ImageSpec, MountSpec, SandboxSpec, ServerSpec, Value,
};
use super::diff::{Inputs, plan};
use super::{Action, Direction, Plan, render};
use crate::config::model::{Access, NetworkMode, PullPolicy};
use crate::config::resolve::Engine;
use crate::podman::inspect::{Observed, ObservedContainer, ObservedImage};
use crate::podman::labels;

fn fixture() -> Desired {
    let build = BuildSpec {
        containerfile: "sandbox/Containerfile".into(),
        containerfile_text: "FROM localhost/outrig-base:bookworm\nCOPY vendor /opt\n".into(),
        context: "sandbox".into(),
        ignore_file: Some(".containerignore".into()),
        context_files: 2,
        context_bytes: 100,
        build_args: BTreeMap::from([("NODE_MAJOR".into(), Value::Literal("18".into()))]),
        target: None,
        containerfile_hash: "cf1".into(),
        context_hash: "ctx1".into(),
        args_hash: "args1".into(),
        context_manifest: BTreeMap::from([
            ("Containerfile".into(), "f 644 aaa".into()),
            ("vendor/a.py".into(), "f 644 bbb".into()),
        ]),
    };
    let sandbox = SandboxSpec {
        image: "tools".into(),
        network: NetworkMode::None,
        workspace_host: "/project".into(),
        workspace_mount: "/workspace".into(),
        workspace_access: Access::ReadOnly,
        mounts: vec![],
        tmpfs: vec![],
        cap_add: vec![],
        cap_drop: vec!["ALL".into()],
        no_new_privileges: true,
        read_only: false,
        pids_limit: 512,
        memory: "2g".into(),
        cpus: None,
        rootless: false,
        config_hash: "run1".into(),
    };
    let server = |name: &str, command: &[&str]| ServerSpec {
        image: "tools".into(),
        name: name.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        workdir: "/workspace".into(),
        startup_timeout_ms: 30_000,
        call_timeout_ms: 60_000,
        result_max_bytes: 1 << 20,
    };
    Desired {
        project: "demo".into(),
        project_id: "demo-1234abcd".into(),
        agent: Some("coder".into()),
        images: BTreeMap::from([(
            "tools".into(),
            ImageSpec {
                name: "tools".into(),
                reference: "localhost/outrig-tools:1111".into(),
                pull: PullPolicy::Never,
                build: Some(build),
            },
        )]),
        sandboxes: BTreeMap::from([("tools".into(), sandbox)]),
        servers: BTreeMap::from([
            (
                "tools.fs".into(),
                server("fs", &["node", "/opt/fs.js", "/workspace"]),
            ),
            (
                "tools.time".into(),
                server("time", &["python3", "-m", "mcp_server_time"]),
            ),
        ]),
        agents: BTreeMap::from([(
            "coder".into(),
            AgentSpec {
                name: "coder".into(),
                image: "tools".into(),
                model: "fast".into(),
                identifier: "gpt-4o-mini".into(),
                provider: "openai".into(),
                base_url: "https://api.openai.com/v1".into(),
                api_key: Some("${OPENAI_API_KEY}".into()),
                tools: Some(vec!["fs__*".into()]),
                tool_call_max: 50,
                tool_result_max: 20_000,
            },
        )]),
    }
}

/// The cached manifest of the fixture's original context (`ctx1`).
fn manifests(hash: &str) -> Option<BTreeMap<String, String>> {
    (hash == "ctx1").then(|| {
        fixture().images["tools"]
            .build
            .as_ref()
            .unwrap()
            .context_manifest
            .clone()
    })
}

fn built_image(reference: &str, containerfile: &str, context: &str, args: &str) -> ObservedImage {
    ObservedImage {
        id: format!("id-{reference}"),
        names: vec![reference.into()],
        labels: BTreeMap::from([
            (labels::PROJECT.into(), "demo".into()),
            (labels::IMAGE.into(), "tools".into()),
            (labels::CONTAINERFILE_HASH.into(), containerfile.into()),
            (labels::CONTEXT_HASH.into(), context.into()),
            (labels::ARGS_HASH.into(), args.into()),
        ]),
    }
}

fn container(name: &str, session: &str, state: &str) -> ObservedContainer {
    ObservedContainer {
        id: format!("id-{name}"),
        names: vec![name.into()],
        image: "localhost/outrig-tools:1111".into(),
        state: state.into(),
        labels: BTreeMap::from([
            (labels::PROJECT_ID.into(), "demo-1234abcd".into()),
            (labels::SESSION.into(), session.into()),
        ]),
    }
}

fn run(desired: &Desired, observed: &Observed, last: Option<&Desired>, live: &[&str]) -> Plan {
    let live: BTreeSet<String> = live.iter().map(|s| s.to_string()).collect();
    let engine = Engine {
        podman: "podman".into(),
        global_args: vec![],
    };
    let mut plan = plan(&Inputs {
        desired,
        observed,
        last_applied: last.map(|d| ("20261124T100000-ab12", d)),
        live_sessions: &live,
        engine: &engine,
        root: Path::new("/project"),
        config_text: "# config\n",
        manifests: &manifests,
    })
    .expect("plan");
    plan.outrig_version = "<version>".into();
    plan
}

fn human(plan: &Plan) -> String {
    anstream::adapter::strip_str(&render::human(plan)).to_string()
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.steps
        .iter()
        .map(|s| (s.address.clone(), s.action))
        .collect()
}

#[test]
fn fresh_project_builds_and_grants_everything() {
    let plan = run(&fixture(), &Observed::default(), None, &[]);
    assert!(plan.summary.has_changes);
    assert_eq!(plan.summary.to_build, 1);
    insta::assert_snapshot!("fresh_human", human(&plan));
    let mut json: serde_json::Value = serde_json::from_str(&render::json(&plan)).unwrap();
    json["desired"] = serde_json::json!("<desired>");
    insta::assert_json_snapshot!("fresh_json", json);
}

#[test]
fn current_images_and_unchanged_settings_mean_no_changes() {
    let desired = fixture();
    let observed = Observed {
        images: vec![built_image(
            "localhost/outrig-tools:1111",
            "cf1",
            "ctx1",
            "args1",
        )],
        containers: vec![],
    };
    let plan = run(&desired, &observed, Some(&desired), &[]);
    assert!(!plan.summary.has_changes, "{:#?}", plan.summary);
    assert_eq!(plan.steps[0].action, Action::NoOp);
    assert!(
        plan.security_deltas.is_empty(),
        "{:?}",
        plan.security_deltas
    );
    insta::assert_snapshot!("no_changes_human", human(&plan));
}

#[test]
fn a_changed_containerfile_replaces_the_image_with_a_diff() {
    let old = fixture();
    let mut new = fixture();
    let image = new.images.get_mut("tools").unwrap();
    image.reference = "localhost/outrig-tools:2222".into();
    let build = image.build.as_mut().unwrap();
    build.containerfile_text =
        "FROM localhost/outrig-base:bookworm\nCOPY vendor /opt\nRUN true\n".into();
    build.containerfile_hash = "cf2".into();
    let observed = Observed {
        images: vec![built_image(
            "localhost/outrig-tools:1111",
            "cf1",
            "ctx1",
            "args1",
        )],
        containers: vec![],
    };
    let plan = run(&new, &observed, Some(&old), &[]);
    let step = &plan.steps[0];
    assert_eq!(step.action, Action::Replace);
    assert!(
        step.reason.starts_with("Containerfile changed"),
        "{}",
        step.reason
    );
    assert!(step.diff.as_deref().unwrap().contains("+RUN true"));
    assert_eq!(plan.summary.to_build, 1);
    insta::assert_snapshot!("containerfile_changed_human", human(&plan));
}

#[test]
fn a_changed_context_file_is_named() {
    let old = fixture();
    let mut new = fixture();
    let image = new.images.get_mut("tools").unwrap();
    image.reference = "localhost/outrig-tools:3333".into();
    let build = image.build.as_mut().unwrap();
    build.context_hash = "ctx2".into();
    build
        .context_manifest
        .insert("vendor/a.py".into(), "f 644 ccc".into());
    let observed = Observed {
        images: vec![built_image(
            "localhost/outrig-tools:1111",
            "cf1",
            "ctx1",
            "args1",
        )],
        containers: vec![],
    };
    let plan = run(&new, &observed, Some(&old), &[]);
    assert_eq!(plan.steps[0].action, Action::Replace);
    assert!(
        plan.steps[0]
            .reason
            .contains("build context changed: `vendor/a.py`"),
        "{}",
        plan.steps[0].reason
    );
    let builds: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Replace)
        .collect();
    assert_eq!(builds.len(), 1);
}

#[test]
fn without_a_session_record_the_labels_still_name_the_changed_input() {
    let mut new = fixture();
    let image = new.images.get_mut("tools").unwrap();
    image.reference = "localhost/outrig-tools:4444".into();
    image.build.as_mut().unwrap().args_hash = "args2".into();
    let observed = Observed {
        images: vec![built_image(
            "localhost/outrig-tools:1111",
            "cf1",
            "ctx1",
            "args1",
        )],
        containers: vec![],
    };
    let plan = run(&new, &observed, None, &[]);
    assert_eq!(plan.steps[0].action, Action::Replace);
    assert!(
        plan.steps[0].reason.starts_with("build arguments changed"),
        "{}",
        plan.steps[0].reason
    );
}

#[test]
fn orphans_are_removed_and_live_sessions_kept() {
    let desired = fixture();
    let observed = Observed {
        images: vec![built_image(
            "localhost/outrig-tools:1111",
            "cf1",
            "ctx1",
            "args1",
        )],
        containers: vec![
            container(
                "outrig-demo-tools-20261120T080000-dead",
                "20261120T080000-dead",
                "exited",
            ),
            container(
                "outrig-demo-tools-20261125T080000-live",
                "20261125T080000-live",
                "running",
            ),
        ],
    };
    let plan = run(
        &desired,
        &observed,
        Some(&desired),
        &["20261125T080000-live"],
    );
    let found = actions(&plan);
    assert!(found.contains(&(
        "container.outrig-demo-tools-20261120T080000-dead".into(),
        Action::Remove
    )));
    assert!(found.contains(&(
        "container.outrig-demo-tools-20261125T080000-live".into(),
        Action::NoOp
    )));
    assert_eq!(plan.summary.to_remove, 1);
    assert!(plan.summary.has_changes);
    insta::assert_snapshot!("orphan_human", human(&plan));
}

#[test]
fn security_widening_and_narrowing_are_reported() {
    let old = fixture();
    let mut new = fixture();
    let sandbox = new.sandboxes.get_mut("tools").unwrap();
    sandbox.network = NetworkMode::Default;
    sandbox.workspace_access = Access::ReadWrite;
    sandbox.cap_add = vec!["NET_BIND_SERVICE".into()];
    sandbox.mounts = vec![MountSpec {
        source: "/data".into(),
        target: "/data".into(),
        access: Access::ReadWrite,
    }];
    sandbox.config_hash = "run2".into();
    new.servers.remove("tools.fs");
    new.servers.get_mut("tools.time").unwrap().env.insert(
        "API_TOKEN".into(),
        Value::Secret {
            template: "${API_TOKEN}".into(),
            fingerprint: "0123456789ab".into(),
        },
    );
    let agent = new.agents.get_mut("coder").unwrap();
    agent.base_url = "https://elsewhere.example/v1".into();
    agent.tools = Some(vec!["fs__*".into(), "time__*".into()]);
    let observed = Observed {
        images: vec![built_image(
            "localhost/outrig-tools:1111",
            "cf1",
            "ctx1",
            "args1",
        )],
        containers: vec![],
    };
    let plan = run(&new, &observed, Some(&old), &[]);
    let kinds: Vec<(&str, Direction)> = plan
        .security_deltas
        .iter()
        .map(|d| (d.kind.as_str(), d.direction))
        .collect();
    for expected in [
        ("workspace-access", Direction::Widens),
        ("network", Direction::Widens),
        ("mount", Direction::Widens),
        ("capability", Direction::Widens),
        ("secret", Direction::Widens),
        ("server", Direction::Narrows),
        ("tools", Direction::Widens),
        ("provider-url", Direction::Widens),
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected:?} missing from {kinds:?}"
        );
    }
    assert!(plan.summary.has_changes);
    let text = human(&plan);
    assert!(
        !text.contains("0123456789ab") || text.contains("fingerprint"),
        "only fingerprints"
    );
    insta::assert_snapshot!("security_human", text);
}

#[test]
fn existing_images_are_never_pulled_unless_allowed() {
    let mut desired = fixture();
    let image = desired.images.get_mut("tools").unwrap();
    image.build = None;
    image.reference = "localhost/outrig-base:bookworm".into();
    let engine = Engine {
        podman: "podman".into(),
        global_args: vec![],
    };
    let live = BTreeSet::new();
    let inputs = |desired: &Desired| {
        plan(&Inputs {
            desired,
            observed: &Observed::default(),
            last_applied: None,
            live_sessions: &live,
            engine: &engine,
            root: Path::new("/project"),
            config_text: "",
            manifests: &manifests,
        })
    };
    let error = inputs(&desired).unwrap_err();
    assert!(
        error.message.contains("does not exist locally"),
        "{}",
        error.message
    );
    desired.images.get_mut("tools").unwrap().pull = PullPolicy::Missing;
    let pulled = inputs(&desired).unwrap();
    assert_eq!(pulled.steps[0].action, Action::Create);
    assert_eq!(
        pulled.steps[0].command.as_deref(),
        Some("podman pull localhost/outrig-base:bookworm")
    );
    // Present: short names match as podman resolves them.
    let observed = Observed {
        images: vec![ObservedImage {
            id: "abc".into(),
            names: vec!["localhost/outrig-base:bookworm".into()],
            labels: BTreeMap::new(),
        }],
        containers: vec![],
    };
    let mut short = desired.clone();
    short.images.get_mut("tools").unwrap().reference = "outrig-base:bookworm".into();
    let present = plan(&Inputs {
        desired: &short,
        observed: &observed,
        last_applied: None,
        live_sessions: &live,
        engine: &engine,
        root: Path::new("/project"),
        config_text: "",
        manifests: &manifests,
    })
    .unwrap();
    assert_eq!(present.steps[0].action, Action::NoOp);
}

#[test]
fn a_changed_server_command_is_an_update_with_a_diff() {
    let old = fixture();
    let mut new = fixture();
    new.servers
        .get_mut("tools.time")
        .unwrap()
        .command
        .push("--local-timezone=UTC".into());
    let observed = Observed {
        images: vec![built_image(
            "localhost/outrig-tools:1111",
            "cf1",
            "ctx1",
            "args1",
        )],
        containers: vec![],
    };
    let plan = run(&new, &observed, Some(&old), &[]);
    let step = plan
        .steps
        .iter()
        .find(|s| s.address == "mcp.tools.time")
        .unwrap();
    assert_eq!(step.action, Action::Update);
    assert_eq!(step.reason, "command changed");
    assert!(
        step.diff
            .as_deref()
            .unwrap()
            .contains("+--local-timezone=UTC")
    );
    assert!(plan.summary.has_changes);
    assert_eq!(plan.summary.changed, 1);
}

#[test]
fn plans_round_trip_through_json_and_match_their_schema() {
    let plan = run(&fixture(), &Observed::default(), None, &[]);
    let text = render::json(&plan);
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(render::json(&back), text);
    let schema: serde_json::Value = serde_json::from_str(&crate::schema::generate_plan()).unwrap();
    let validator = jsonschema::draft7::new(&schema).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
