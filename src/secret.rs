//! Everything about `${VAR}`: the template syntax, resolving a template from the host
//! environment, the keyed fingerprints that identify a secret value in plans and records,
//! and the redaction that keeps values out of logs, records and error messages.
//!
//! A config value is a template: literal text, `${NAME}` references, and `$$` for a
//! literal `$`. Any other `$` is an error, so a typo can never silently send a
//! half-expanded secret. A value that references a variable is secret: it is resolved only
//! at the moment it is handed to podman's environment, and is otherwise shown as written
//! with a fingerprint.
//!
//! Fingerprints are keyed with a random key kept per user in outrig's data directory
//! (`fingerprint.key`, mode 0600), so that someone holding a plan cannot confirm a guessed
//! secret offline. This module reads and writes no environment itself: callers pass a
//! lookup and the key's directory.

use std::io::{Read, Write};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One piece of a parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Reference(String),
}

/// Why a value is not a valid template. Never carries the value itself, which may be a
/// secret pasted by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset of the offending `$` inside the value.
    pub offset: usize,
    pub reason: String,
}

/// Parse a value into literal and reference pieces.
pub fn parse(value: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    let mut offset = 0;
    while let Some(dollar) = rest.find('$') {
        literal.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let at = offset + dollar;
        if let Some(after_escape) = after.strip_prefix('$') {
            literal.push('$');
            offset = at + 2;
            rest = after_escape;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            return Err(TemplateError {
                offset: at,
                reason: "a `$` must start a `${NAME}` reference; write `$$` for a literal `$`"
                    .into(),
            });
        };
        let Some(close) = body.find('}') else {
            return Err(TemplateError {
                offset: at,
                reason: "`${` is not closed with `}`".into(),
            });
        };
        let name = &body[..close];
        if !is_variable_name(name) {
            return Err(TemplateError {
                offset: at,
                reason: if name.is_empty() {
                    "`${}` names no variable".into()
                } else {
                    "a variable name has letters, digits and `_`, and does not start with a digit"
                        .into()
                },
            });
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Reference(name.to_string()));
        offset = at + 2 + close + 1;
        rest = &body[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// Whether `name` is usable as an environment variable name.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variables a value references (empty for a literal or an invalid template).
pub fn references(value: &str) -> Vec<String> {
    parse(value)
        .map(|pieces| {
            pieces
                .into_iter()
                .filter_map(|piece| match piece {
                    Piece::Reference(name) => Some(name),
                    Piece::Literal(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// If `value` is exactly one reference (`${NAME}`), its name.
pub fn sole_reference(value: &str) -> Option<String> {
    match parse(value).ok()?.as_slice() {
        [Piece::Reference(name)] => Some(name.clone()),
        _ => None,
    }
}

/// A value from the config: literal, or a template with `${VAR}` references, which is
/// shown as written and identified by a fingerprint of its resolved value, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Value {
    Literal(String),
    Secret {
        /// The value as written, e.g. `${API_TOKEN}`.
        template: String,
        /// Keyed BLAKE3 of the resolved value (12 hex digits).
        fingerprint: String,
    },
}

impl Value {
    /// The template of a secret value.
    pub fn secret_template(&self) -> Option<&str> {
        match self {
            Value::Secret { template, .. } => Some(template),
            Value::Literal(_) => None,
        }
    }

    /// How the value is shown: the literal, or the template with its fingerprint.
    pub fn shown(&self) -> String {
        match self {
            Value::Literal(text) => text.clone(),
            Value::Secret {
                template,
                fingerprint,
            } => format!("{template} (fingerprint {fingerprint})"),
        }
    }
}

/// The first variable of `template` that `env` does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset(pub String);

/// The resolved value of `template`, reading each `${VAR}` from `env`. Only called where a
/// value is handed to a process environment or an HTTP header.
pub fn resolve(template: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Unset> {
    let mut resolved = String::new();
    for piece in parse(template).map_err(|_| Unset(String::new()))? {
        match piece {
            Piece::Literal(text) => resolved.push_str(&text),
            Piece::Reference(name) => match env(&name) {
                Some(value) => resolved.push_str(&value),
                None => return Err(Unset(name)),
            },
        }
    }
    Ok(resolved)
}

/// The key that fingerprints secret values, one per user.
#[derive(Clone)]
pub struct FingerprintKey([u8; 32]);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

/// The file, in outrig's data directory, that holds the fingerprint key.
pub const KEY_FILE: &str = "fingerprint.key";

impl FingerprintKey {
    /// A fixed key, for tests and benchmarks only.
    pub fn fixed(bytes: [u8; 32]) -> FingerprintKey {
        FingerprintKey(bytes)
    }

    /// The key in `dir/fingerprint.key`, created (random, mode 0600) when missing. Two
    /// processes creating it at once agree: the file is written aside and linked into
    /// place only if no other appeared first.
    pub fn load_or_create(dir: &Path) -> std::io::Result<FingerprintKey> {
        let path = dir.join(KEY_FILE);
        match std::fs::File::open(&path) {
            Ok(file) => return read_key(file, &path),
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            Err(_) => {}
        }
        std::fs::create_dir_all(dir)?;
        let key: [u8; 32] = rand::random();
        let mut temp = tempfile::Builder::new()
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(dir)?;
        temp.write_all(&to_hex(&key).into_bytes())?;
        temp.as_file().sync_all()?;
        match temp.persist_noclobber(&path) {
            Ok(_) => Ok(FingerprintKey(key)),
            Err(error) if error.error.kind() == std::io::ErrorKind::AlreadyExists => {
                read_key(std::fs::File::open(&path)?, &path)
            }
            Err(error) => Err(error.error),
        }
    }

    /// The fingerprint of a secret value: 12 hex digits of a BLAKE3 hash keyed with this
    /// key. It changes when the value does, and without the key says nothing about it.
    pub fn fingerprint(&self, value: &str) -> String {
        blake3::keyed_hash(&self.0, value.as_bytes()).to_hex()[..12].to_string()
    }
}

fn read_key(mut file: std::fs::File, path: &Path) -> std::io::Result<FingerprintKey> {
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(256)
        .read_to_string(&mut text)?;
    let bytes = from_hex(text.trim()).ok_or_else(|| {
        std::io::Error::other(format!(
            "`{}` is not an outrig fingerprint key (64 hex digits); delete it to make a new one",
            path.display()
        ))
    })?;
    Ok(FingerprintKey(bytes))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Turns config templates into [`Value`]s: literal, or secret with a fingerprint, noting
/// every variable that is not set.
pub struct Resolver<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub key: &'a FingerprintKey,
    /// Variables referenced but not set, in the order met.
    pub missing: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub fn new(env: &'a dyn Fn(&str) -> Option<String>, key: &'a FingerprintKey) -> Self {
        Resolver {
            env,
            key,
            missing: Vec::new(),
        }
    }

    /// The value of a config template.
    pub fn value(&mut self, template: &str) -> Value {
        if references(template).is_empty() {
            return Value::Literal(template.replace("$$", "$"));
        }
        match resolve(template, self.env) {
            Ok(resolved) => Value::Secret {
                template: template.to_string(),
                fingerprint: self.key.fingerprint(&resolved),
            },
            Err(Unset(_)) => {
                for name in references(template) {
                    if (self.env)(&name).is_none() {
                        self.missing.push(name);
                    }
                }
                Value::Secret {
                    template: template.to_string(),
                    fingerprint: String::new(),
                }
            }
        }
    }

    /// Note a variable that must be set (an API key read directly).
    pub fn require(&mut self, name: &str) {
        if (self.env)(name).is_none() {
            self.missing.push(name.to_string());
        }
    }

    /// The variables that were missing, sorted and unique.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = self.missing.clone();
        missing.sort();
        missing.dedup();
        missing
    }
}

/// Values shorter than this are not redacted: they would blank out ordinary text.
const MIN_SECRET_LEN: usize = 4;

/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";

/// Replaces secret values with `[redacted]`, in raw text and in JSON text (where a value
/// holding `"` or `\` appears escaped).
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = Vec::new();
        for value in values.into_iter().filter(|v| v.len() >= MIN_SECRET_LEN) {
            // The form the value takes inside a JSON string, when it differs.
            let escaped = serde_json::to_string(&value).unwrap_or_default();
            let escaped = &escaped[1..escaped.len().saturating_sub(1).max(1)];
            if escaped != value {
                secrets.push(escaped.to_string());
            }
            secrets.push(value);
        }
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// The values of every variable that `templates` reference, read from `env`.
    pub fn for_templates<'t>(
        templates: impl IntoIterator<Item = &'t str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Redactor {
        Redactor::new(
            templates
                .into_iter()
                .flat_map(references)
                .filter_map(|name| env(&name)),
        )
    }

    /// Add values (an API key read at run time).
    pub fn add(&mut self, values: impl IntoIterator<Item = String>) {
        let old = std::mem::take(&mut self.secrets);
        *self = Redactor::new(old.into_iter().chain(values));
    }

    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }

    /// Every string in a JSON value (keys too), redacted.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value as Json;
        match value {
            Json::String(text) => Json::String(self.redact(text)),
            Json::Array(items) => Json::Array(items.iter().map(|v| self.redact_json(v)).collect()),
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The first `max` characters of `text`, redacted, with `…` when cut.
pub fn preview(text: &str, max: usize, redactor: &Redactor) -> String {
    // Redact before cutting, so a cut cannot split a secret into an unredacted prefix.
    let redacted = redactor.redact(text);
    match redacted.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &redacted[..at]),
        None => redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_keyed_stable_and_hide_the_value() {
        let key = FingerprintKey::fixed([7; 32]);
        let print = key.fingerprint("s3cr3t-value");
        assert_eq!(print, key.fingerprint("s3cr3t-value"));
        assert_ne!(print, key.fingerprint("s3cr3t-valuf"));
        assert_ne!(
            print,
            FingerprintKey::fixed([8; 32]).fingerprint("s3cr3t-value")
        );
        assert!(!print.contains("s3cr3t"));
        assert_eq!(print.len(), 12);
    }

    #[test]
    fn the_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = FingerprintKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = FingerprintKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.fingerprint("x"), second.fingerprint("x"));
        std::fs::write(dir.path().join(KEY_FILE), "junk").unwrap();
        let error = FingerprintKey::load_or_create(dir.path()).unwrap_err();
        assert!(error.to_string().contains("delete it"), "{error}");
    }

    #[test]
    fn secrets_are_redacted_raw_escaped_and_before_the_preview_is_cut() {
        let redactor = Redactor::new(["s3cr3t-value".to_string(), "abc".to_string()]);
        assert_eq!(
            redactor.redact("x s3cr3t-value y abc"),
            "x [redacted] y abc"
        );
        let cut = preview("key=s3cr3t-value and more", 8, &redactor);
        assert_eq!(cut, "key=[red…");
        assert!(!cut.contains("s3cr"));
        let quoted = Redactor::new([r#"pa"ss\word"#.to_string()]);
        let json = serde_json::json!({"password": r#"pa"ss\word"#}).to_string();
        assert_eq!(quoted.redact(&json), r#"{"password":"[redacted]"}"#);
        let value = quoted.redact_json(&serde_json::json!({"a": [r#"x pa"ss\word"#]}));
        assert_eq!(value, serde_json::json!({"a": ["x [redacted]"]}));
    }

    #[test]
    fn resolving_names_the_unset_variable() {
        let env = |name: &str| (name == "A").then(|| "1".to_string());
        assert_eq!(resolve("${A}-${A}", &env), Ok("1-1".into()));
        assert_eq!(resolve("${A}${B}", &env), Err(Unset("B".into())));
        let key = FingerprintKey::fixed([1; 32]);
        let mut resolver = Resolver::new(&env, &key);
        assert_eq!(resolver.value("a$$b"), Value::Literal("a$b".into()));
        assert!(matches!(resolver.value("${B}"), Value::Secret { .. }));
        assert_eq!(resolver.missing(), vec!["B".to_string()]);
    }

    #[test]
    fn pieces() {
        assert_eq!(
            parse("Bearer ${TOKEN} $$5").unwrap(),
            vec![
                Piece::Literal("Bearer ".into()),
                Piece::Reference("TOKEN".into()),
                Piece::Literal(" $5".into()),
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(sole_reference("${A_1}"), Some("A_1".into()));
        assert_eq!(sole_reference("x${A}"), None);
    }

    #[test]
    fn errors_point_at_the_dollar() {
        assert_eq!(parse("ab $X").unwrap_err().offset, 3);
        assert_eq!(parse("${A}${").unwrap_err().offset, 4);
        assert!(parse("${1A}").is_err());
        assert!(parse("${}").is_err());
        assert!(parse("${A-B}").is_err());
    }

    #[test]
    fn multibyte_text_is_fine() {
        assert_eq!(references("é${A}ü${B}"), vec!["A", "B"]);
    }
}
