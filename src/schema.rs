//! The JSON Schema of `outrig.toml`: generated from [`crate::config::model`] and nothing
//! else, so the file, the loader and editor completion cannot disagree.
//!
//! The committed copy is `schema/outrig.schema.json`; a test keeps it equal to
//! [`generate`]. The output is draft-07 (what taplo validates), writes
//! `additionalProperties: false` on every table (Tombi treats a missing one as false), has
//! no `null` types (TOML has no null), and is byte-for-byte deterministic.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::config::model::ConfigFile;

/// Where the committed schema lives, relative to the repository root.
pub const COMMITTED_PATH: &str = "schema/outrig.schema.json";

/// Where the committed schema of the plan format (`plan --json`, `--out`) lives.
pub const PLAN_COMMITTED_PATH: &str = "schema/plan.schema.json";

/// The schema as a JSON value.
pub fn generate_value() -> Value {
    value_for::<ConfigFile>(true)
}

/// The schema as pretty-printed JSON text, with a trailing newline.
pub fn generate() -> String {
    pretty(&generate_value())
}

/// The schema of a JSON format outrig writes (the plan's), as pretty-printed JSON text:
/// the same generator and rewrites as the config's, `null` kept.
pub fn generate_json_format<T: schemars::JsonSchema>() -> String {
    pretty(&value_for::<T>(false))
}

fn value_for<T: schemars::JsonSchema>(toml: bool) -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut value = schema.to_value();
    // TOML has no null; JSON plans do (an absent agent, an unset option).
    if toml {
        strip_null(&mut value);
    }
    simplify(&mut value);
    value
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value prints");
    text.push('\n');
    text
}

/// The generated schema, built once per process.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(generate_value)
}

/// A validator for the generated schema, compiled once per process.
pub fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(schema())
            .expect("the generated schema is a valid draft-07 schema")
    })
}

/// Remove `null` from `type` lists and `anyOf` alternatives: `Option<T>` fields are simply
/// absent in TOML, and a `null` type would only confuse completion.
fn strip_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(alternatives)) = map.get_mut("anyOf") {
                alternatives.retain(|alt| alt.get("type") != Some(&Value::String("null".into())));
                if alternatives.len() == 1 {
                    let only = alternatives.remove(0);
                    map.remove("anyOf");
                    merge_into(map, only);
                }
            }
            for child in map.values_mut() {
                strip_null(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// Two rewrites that make the schema friendlier to validators and editors alike:
/// a `oneOf` of string constants becomes a plain `enum` (clearer errors, and every editor
/// completes it), its per-value docs folded into the description; and the integer `format`s
/// schemars adds (`uint32`, ...), which are not draft-07 formats, are dropped.
fn simplify(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let constants: Option<Vec<(String, Option<String>)>> = map
                .get("oneOf")
                .and_then(Value::as_array)
                .and_then(|alternatives| {
                    alternatives
                        .iter()
                        .map(|alt| {
                            let constant = alt.get("const")?.as_str()?.to_string();
                            let doc = alt.get("description").and_then(Value::as_str);
                            Some((constant, doc.map(str::to_string)))
                        })
                        .collect()
                });
            if let Some(constants) = constants {
                map.remove("oneOf");
                map.insert("type".into(), Value::String("string".into()));
                map.insert(
                    "enum".into(),
                    Value::Array(
                        constants
                            .iter()
                            .map(|(c, _)| Value::String(c.clone()))
                            .collect(),
                    ),
                );
                let mut description = map
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                for (constant, doc) in &constants {
                    if let Some(doc) = doc {
                        description.push_str(&format!("\n- `\"{constant}\"`: {doc}"));
                    }
                }
                map.insert("description".into(), Value::String(description));
            }
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("uint") || f.starts_with("int") || f == "double")
            {
                map.remove("format");
            }
            for child in map.values_mut() {
                simplify(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

fn merge_into(map: &mut Map<String, Value>, other: Value) {
    if let Value::Object(other) = other {
        for (key, value) in other {
            map.entry(key).or_insert(value);
        }
    }
}

/// The names a table at `path` (a JSON-pointer-like list of keys) may contain, read from the
/// schema. Used for "did you mean" on unknown keys. Array indices step into `items`.
pub fn known_keys_at<'a>(path: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let root = schema();
    let mut node = resolve_ref(root, root);
    for segment in path {
        let next = node
            .get("properties")
            .and_then(|p| p.get(segment))
            .or_else(|| node.get("additionalProperties").filter(|v| v.is_object()))
            .or_else(|| {
                node.get("items")
                    .filter(|_| segment.parse::<usize>().is_ok())
            });
        match next {
            Some(next) => node = resolve_ref(root, next),
            None => return Vec::new(),
        }
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn resolve_ref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    // Bounded: a reference chain longer than the number of definitions is a cycle.
    for _ in 0..64 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return node;
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            return node;
        };
        match root.pointer(pointer) {
            Some(target) => node = target,
            None => return node,
        }
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generate(), generate());
    }

    #[test]
    fn every_object_forbids_unknown_keys() {
        fn walk(value: &Value, at: &str) {
            if let Value::Object(map) = value {
                if map.get("type") == Some(&Value::String("object".into()))
                    && map.contains_key("properties")
                {
                    assert_eq!(
                        map.get("additionalProperties"),
                        Some(&Value::Bool(false)),
                        "{at} allows unknown keys"
                    );
                }
                for (key, child) in map {
                    walk(child, &format!("{at}/{key}"));
                }
            }
        }
        walk(&generate_value(), "");
    }

    #[test]
    fn no_null_types_remain() {
        assert!(!generate().contains("\"null\""));
    }

    #[test]
    fn known_keys_follow_maps_and_refs() {
        let keys = known_keys_at(["images", "tools", "mcp", "fs"]);
        assert!(keys.contains(&"command".to_string()), "{keys:?}");
        let keys = known_keys_at(["images", "tools", "mounts", "0"]);
        assert!(keys.contains(&"target".to_string()), "{keys:?}");
        assert!(known_keys_at([]).contains(&"default-agent".to_string()));
    }
}
