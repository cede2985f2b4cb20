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

/// Every property with a default declares it, so editors (Taplo, Tombi) show it: a
/// description's "Default `X`" is the declared default, and only defaults that depend on
/// where the project is or on the provider are left as prose.
#[test]
fn schema_declares_every_default() {
    fn properties(
        value: &serde_json::Value,
        owner: &str,
        out: &mut Vec<(String, serde_json::Value)>,
    ) {
        if let Some(map) = value.as_object() {
            if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                for (key, property) in props {
                    out.push((format!("{owner}.{key}"), property.clone()));
                }
            }
            if let Some(definitions) = map.get("definitions").and_then(|d| d.as_object()) {
                for (name, definition) in definitions {
                    properties(definition, name, out);
                }
            }
        }
    }
    let mut all = Vec::new();
    properties(&outrig::schema::generate_value(), "", &mut all);
    // Defaults no JSON value can state.
    let computed = [
        ".project",          // the directory's name
        ".session-root",     // under $XDG_DATA_HOME
        "Image.context",     // the Containerfile's directory
        "Image.cpus",        // no limit
        "McpServer.workdir", // the workspace mount
        "Model.max-tokens",  // the provider's
        "Model.temperature", // the provider's
    ];
    let mut undeclared = Vec::new();
    for (name, property) in &all {
        let description = property["description"].as_str().unwrap_or("");
        let declared = property.get("default");
        if let Some(at) = description.find("Default `") {
            let rest = &description[at + "Default `".len()..];
            let text = &rest[..rest.find('`').unwrap()];
            let documented: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("{name}: `{text}` is not JSON: {e}"));
            assert_eq!(declared, Some(&documented), "{name}");
        } else if declared.is_none()
            && description.contains("efault")
            && !computed.contains(&name.as_str())
        {
            undeclared.push(name.clone());
        }
    }
    assert!(
        undeclared.is_empty(),
        "defaults in prose only: {undeclared:?}"
    );
    let declared = all
        .iter()
        .filter(|(_, p)| p.get("default").is_some())
        .count();
    assert!(declared >= 32, "{declared} defaults declared");
}
