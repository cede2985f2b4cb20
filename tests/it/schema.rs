//! The committed schema must equal what the code generates.

use crate::context::{repo_root, run_in_repo};

#[test]
fn committed_schema_is_fresh() {
    check_fresh(outrig::schema::COMMITTED_PATH, &outrig::schema::generate());
}

#[test]
fn committed_plan_schema_is_fresh() {
    check_fresh(outrig::schema::PLAN_COMMITTED_PATH, &outrig::plan::schema());
    let run = run_in_repo(&["schema", "plan"]);
    assert_eq!(run.stdout, outrig::plan::schema());
}

fn check_fresh(relative: &str, generated: &str) {
    let path = repo_root().join(relative);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let generated = generated.to_string();
    if std::env::var_os("OUTRIG_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let diff = similar::TextDiff::from_lines(&committed, &generated)
        .unified_diff()
        .header(&format!("{relative} (committed)"), "generated")
        .to_string();
    panic!("{relative} is stale; run `OUTRIG_UPDATE_SCHEMA=1 cargo test` to rewrite it\n{diff}");
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let run = run_in_repo(&["schema"]);
    assert_eq!(run.status, 0);
    assert_eq!(run.stdout, outrig::schema::generate());
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["$schema"], "http://json-schema.org/draft-07/schema#");
}

#[test]
fn schema_is_a_valid_draft7_schema() {
    let schema = outrig::schema::generate_value();
    jsonschema::draft7::meta::validate(&schema).expect("valid against the draft-07 meta-schema");
}

/// doc/config.md lists every key of the schema.
#[test]
fn config_reference_names_every_key() {
    fn keys(value: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        if let Some(map) = value.as_object() {
            if let Some(properties) = map.get("properties").and_then(|p| p.as_object()) {
                out.extend(properties.keys().cloned());
            }
            map.values().for_each(|child| keys(child, out));
        } else if let Some(items) = value.as_array() {
            items.iter().for_each(|child| keys(child, out));
        }
    }
    let mut all = std::collections::BTreeSet::new();
    keys(&outrig::schema::generate_value(), &mut all);
    let doc = std::fs::read_to_string(repo_root().join("doc/config.md")).unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "doc/config.md does not mention {missing:?}"
    );
}
