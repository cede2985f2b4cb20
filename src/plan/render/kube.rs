//! The Kubernetes export in words and files: its manifests as YAML documents (byte-stable:
//! keys sorted, strings quoted whenever YAML could read them as anything else), the
//! Secrets to create, a kustomization, and the view `plan --target kube` prints.

use std::fmt::Write as _;

use serde_json::Value;

use crate::plan::kube::{Export, Format};

/// Every manifest, one YAML document each, with what it is for.
pub fn documents(export: &Export) -> String {
    let mut out = String::new();
    for (index, resource) in export.resources.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(&document(resource));
    }
    out
}

/// One manifest as a YAML document, its purpose as a comment above it.
pub fn document(resource: &crate::plan::kube::Resource) -> String {
    let mut out = String::new();
    if !resource.purpose.is_empty() {
        let _ = writeln!(out, "# {}", resource.purpose);
    }
    out.push_str(&yaml(&resource.manifest));
    out
}

/// `kustomization.yaml` listing the files `--out` wrote, in order.
pub fn kustomization(export: &Export) -> String {
    let files: Vec<Value> = export
        .resources
        .iter()
        .enumerate()
        .map(|(index, r)| Value::String(r.file_name(index)))
        .collect();
    yaml(&serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files,
    }))
}

/// The Secrets to create before applying, as commands to run (values left to the reader).
pub fn secrets(export: &Export) -> String {
    let mut out = String::new();
    for secret in &export.secrets {
        let keys: Vec<String> = secret
            .keys
            .iter()
            .map(|(key, value)| format!("--from-literal={key}={}", value.from))
            .collect();
        let _ = writeln!(
            out,
            "kubectl create secret generic {} --namespace {} {}",
            secret.name,
            export.namespace,
            keys.join(" ")
        );
        for (key, value) in &secret.keys {
            let _ = writeln!(out, "  # {key}: {}", value.holds);
        }
    }
    out
}

/// `SECRETS.md`, written beside the manifests.
pub fn secrets_file(export: &Export) -> String {
    format!(
        "# Secrets to create before `kubectl apply -k .`\n\n\
         The manifests reference these Secrets and never hold their values. Set each variable \
         in your shell, then run:\n\n```sh\n{}```\n",
        secrets(export)
    )
}

/// What `outrig plan --target kube` shows: each resource and what it is for.
pub fn human(export: &Export) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Kubernetes export of image `{}` (project `{}`), namespace `{}`, as {}:",
        export.image,
        export.project,
        export.namespace,
        match export.options.format {
            Format::Pod => "a Pod",
            Format::AgentSandbox => "an agent-sandbox SandboxTemplate",
        }
    );
    let width = export
        .resources
        .iter()
        .map(|r| r.kind.len() + r.name.len() + 1)
        .max()
        .unwrap_or(0);
    for resource in &export.resources {
        let address = format!("{}/{}", resource.kind, resource.name);
        let _ = writeln!(out, "  + {address:<width$}  {}", resource.purpose);
    }
    out.push_str("\nSecrets to create first (names and keys only; no value is exported):\n");
    for line in secrets(export).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// The export as versioned JSON.
pub fn json(export: &Export) -> String {
    let mut text = serde_json::to_string_pretty(export).expect("an export serialises");
    text.push('\n');
    text
}

/// `value` as block-style YAML.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar, 0));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (index, (key, value)) in map.iter().enumerate() {
        // The first key of a sequence item follows its `- `.
        if index > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&scalar_string(key));
        out.push(':');
        write_value(out, value, indent);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for (index, item) in items.iter().enumerate() {
        if index > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map, indent + 2),
            Value::Array(inner) if !inner.is_empty() => write_seq(out, inner, indent + 2),
            scalar => {
                out.push_str(&inline(scalar, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// After `key:`: a nested block on the lines below, or a scalar on the same line.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar, indent + 2));
            out.push('\n');
        }
    }
}

/// A scalar (or an empty collection) on one line; a multi-line string as a literal block
/// indented by `indent`.
fn inline(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        Value::String(text) if literal_block(text) => {
            let chomp = if text.ends_with('\n') { "" } else { "-" };
            let mut block = format!("|{chomp}");
            for line in text.trim_end_matches('\n').split('\n') {
                block.push('\n');
                if !line.is_empty() {
                    block.push_str(&" ".repeat(indent));
                    block.push_str(line);
                }
            }
            block
        }
        Value::String(text) => scalar_string(text),
    }
}

/// Whether a string is written as a literal block: several lines, nothing YAML would fold
/// or strip (leading blanks on the first line, trailing blanks, control characters, more
/// than one trailing newline).
fn literal_block(text: &str) -> bool {
    text.trim_end_matches('\n').contains('\n')
        && !text.starts_with([' ', '\t'])
        && !text.ends_with("\n\n")
        && !text.chars().any(|c| c.is_control() && c != '\n')
        && !text.lines().any(|l| l.ends_with([' ', '\t']))
}

/// A string plain when YAML reads it back as this very string, else double-quoted (JSON's
/// escapes are YAML's).
fn scalar_string(text: &str) -> String {
    let reserved = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !reserved.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_is_block_style_and_reads_back_as_written() {
        let value = json!({
            "apiVersion": "v1",
            "data": {"outrig.toml": "project = \"demo\"\n[images.tools]\n", "one": "no"},
            "list": [{"name": "a", "value": "1"}, {"name": "b", "empty": {}}],
            "nested": [["x"]],
            "port": 8080,
            "ok": true,
            "args": ["--listen", "0.0.0.0:8080", "sh -c 'x'"],
            "none": [],
        });
        let text = yaml(&value);
        assert_eq!(
            text,
            r#"apiVersion: v1
args:
- "--listen"
- "0.0.0.0:8080"
- "sh -c 'x'"
data:
  one: "no"
  outrig.toml: |
    project = "demo"
    [images.tools]
list:
- name: a
  value: "1"
- empty: {}
  name: b
nested:
- - x
none: []
ok: true
port: 8080
"#
        );
    }
}
