//! The schema layer: validate the JSON form of the file against the generated schema and
//! turn every error into a [`Diagnostic`] that points at the offending key or value.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::source::{SpanMap, dotted_path, pointer_segment};
use super::suggest::did_you_mean;
use crate::schema;

/// One schema violation: its diagnostic, and the JSON pointer of what to cut away so the
/// semantic layer can still look at the rest of the file.
pub struct Violation {
    pub diagnostic: Diagnostic,
    pub prune: String,
}

/// Every schema violation in `value`, in document order.
pub fn check(value: &Value, spans: &SpanMap) -> Vec<Violation> {
    let mut out = Vec::new();
    for error in schema::validator().iter_errors(value) {
        let segments: Vec<String> = error
            .instance_path()
            .segments()
            .map(|segment| match segment {
                LocationSegment::Property(p) => p.into_owned(),
                LocationSegment::Index(i) => i.to_string(),
            })
            .collect();
        let at: String = segments
            .iter()
            .map(|s| format!("/{}", pointer_segment(s)))
            .collect();
        let instance = value.pointer(&at).unwrap_or(&Value::Null);
        out.extend(describe(error.kind(), &segments, &at, instance, spans));
    }
    out.sort_by_key(|v| v.diagnostic.span.as_ref().map_or(usize::MAX, |s| s.start));
    out
}

fn describe(
    kind: &ValidationErrorKind,
    segments: &[String],
    at: &str,
    instance: &Value,
    spans: &SpanMap,
) -> Vec<Violation> {
    let path = dotted_path(at);
    let field = segments.last().map(String::as_str).unwrap_or("");
    let value_error = |code: &'static str, message: String, label: &str| Violation {
        diagnostic: Diagnostic::error(code, message)
            .at(path.clone(), spans.value_span(at))
            .label(label),
        prune: at.to_string(),
    };
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|key| {
                let child = format!("{at}/{}", pointer_segment(key));
                let known = schema::known_keys_at(segments.iter().map(String::as_str));
                let place = if path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `{path}`")
                };
                let top_level = schema::known_keys_at([]);
                let misplaced = !path.is_empty() && top_level.contains(key);
                let help = misplaced
                    .then(|| {
                        format!(
                            "`{key}` is a top-level key, but keys after a `[table]` header \
                             belong to that table: move it above the first header"
                        )
                    })
                    .or_else(|| did_you_mean(key, &known).map(|s| format!("did you mean `{s}`?")))
                    .or_else(|| {
                        (!known.is_empty()).then(|| format!("known keys: {}", known.join(", ")))
                    });
                Violation {
                    diagnostic: Diagnostic::error(
                        "unknown-key",
                        format!("unknown key `{key}` {place}"),
                    )
                    .at(dotted_path(&child), spans.key_span(&child))
                    .label("unknown key")
                    .help_opt(help),
                    prune: child,
                }
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            let table = if path.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{path}`")
            };
            vec![Violation {
                diagnostic: Diagnostic::error(
                    "missing-key",
                    format!("{table} is missing the required key `{property}`"),
                )
                .at(path.clone(), spans.key_span(at))
                .label(format!("`{property}` is required here"))
                .help(format!("add `{property} = ...`")),
                prune: at.to_string(),
            }]
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => toml_type_name(&t.to_string()).to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| toml_type_name(&t.to_string()).to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let found = found_type(instance);
            vec![value_error(
                "wrong-type",
                format!(
                    "`{path}` must be {} {expected}, not {found}",
                    article(&expected)
                ),
                &format!("expected {} {expected}", article(&expected)),
            )]
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            let mut violation = value_error(
                "invalid-value",
                format!("`{path}` must be one of {}", quoted.join(", ")),
                "not one of the allowed values",
            );
            if let Some(found) = instance.as_str() {
                violation.diagnostic = violation.diagnostic.help_opt(
                    did_you_mean(found, &allowed).map(|s| format!("did you mean \"{s}\"?")),
                );
            }
            vec![violation]
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            vec![value_error(
                "out-of-range",
                format!("`{path}` must be at least {limit}"),
                &format!("smaller than {limit}"),
            )]
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            vec![value_error(
                "out-of-range",
                format!("`{path}` must be at most {limit}"),
                &format!("larger than {limit}"),
            )]
        }
        ValidationErrorKind::MinItems { .. } | ValidationErrorKind::MinLength { .. } => {
            vec![value_error(
                "empty",
                format!("`{path}` must not be empty"),
                "empty",
            )]
        }
        ValidationErrorKind::Pattern { .. } => {
            // An item of a list is named by its list's key.
            let key = match segments {
                [.., list, index] if index.bytes().all(|b| b.is_ascii_digit()) => list.as_str(),
                _ => field,
            };
            let (message, label, help) = pattern_message(key, &path);
            let mut violation = value_error("invalid-format", message, label);
            violation.diagnostic = violation.diagnostic.help(help);
            if field == "api-key" {
                violation.diagnostic = violation.diagnostic.redacted();
            }
            vec![violation]
        }
        other => vec![value_error(
            "schema",
            format!("`{path}` is not valid: {}", describe_other(other)),
            "invalid",
        )],
    }
}

/// Messages for pattern errors, by field. None of them repeats the value: a value that
/// fails the `api-key` pattern may well be a pasted key.
fn pattern_message(field: &str, path: &str) -> (String, &'static str, String) {
    match field {
        "api-key" => (
            format!("`{path}` must name an environment variable, like \"${{OPENAI_API_KEY}}\""),
            "not a `${VAR}` reference",
            "keep the key itself out of the file: export it in the environment and write \
             `api-key = \"${NAME}\"`"
                .into(),
        ),
        "base-url" => (
            format!("`{path}` must be an http:// or https:// URL"),
            "not an http(s) URL",
            "for example \"https://api.openai.com/v1\" or \"http://127.0.0.1:11434/v1\"".into(),
        ),
        "memory" => (
            format!("`{path}` must be a size like \"512m\" or \"2g\""),
            "not a size",
            "a whole number with an optional unit `k`, `m` or `g`".into(),
        ),
        "egress" => (
            format!("`{path}` must be `host:port`, `*.domain:port`, `IP:port` or `CIDR:port`"),
            "not a destination with a port",
            "for example \"api.github.com:443\" or \"*.pypi.org:443\"; IPv6 in brackets, \
             as \"[2001:db8::1]:443\""
                .into(),
        ),
        _ if field.ends_with("timeout") || field.ends_with("budget") => (
            format!("`{path}` must be a duration like \"30s\""),
            "not a duration",
            "a whole number followed by `ms`, `s`, `m` or `h`, for example \"90s\" or \"2m\""
                .into(),
        ),
        _ => (
            format!("`{path}` has the wrong format"),
            "wrong format",
            "see the schema's description of this key".into(),
        ),
    }
}

fn describe_other(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::FalseSchema => "this key is not allowed here".into(),
        ValidationErrorKind::UniqueItems => "items must be unique".into(),
        _ => format!("{kind:?}")
            .split(['{', '('])
            .next()
            .unwrap_or("invalid")
            .trim()
            .to_string(),
    }
}

/// TOML's names for JSON types.
fn toml_type_name(json: &str) -> &str {
    match json {
        "object" => "table",
        "number" => "number",
        "null" => "nothing",
        other => other,
    }
}

fn found_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn article(noun: &str) -> &'static str {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}
