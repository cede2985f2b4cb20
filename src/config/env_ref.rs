//! `${VAR}` references to host environment variables inside config values.
//!
//! A value is a template: literal text, `${NAME}` references, and `$$` for a literal `$`.
//! Any other `$` is an error, so a typo can never silently send a half-expanded secret.
//! Values that contain a reference are secret: they are resolved only at the moment they
//! are handed to podman's environment and are otherwise shown as a fingerprint.

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

#[cfg(test)]
mod tests {
    use super::*;

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
