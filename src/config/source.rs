//! From TOML text to a JSON value plus a map from every value's location to its place in
//! the text, so that schema errors (which speak JSON pointers) and semantic errors (which
//! speak key paths) can both point at the right line and column.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Number, Value};
use toml_edit::{Document, Item, Key, Table};

use super::diagnostic::{Diagnostic, SourceFile};

/// Deepest nesting of tables and arrays accepted. outrig's own format needs six levels;
/// the limit only exists so that hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// Where a key and its value are in the source.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
}

/// Spans of every value, by JSON pointer (`/images/tools/mcp/fs/command/0`).
#[derive(Debug, Default)]
pub struct SpanMap {
    spans: HashMap<String, Spans>,
}

impl SpanMap {
    /// The best place to point at for the value at `pointer`: its value, else its key,
    /// else the nearest enclosing value that has a place.
    pub fn value_span(&self, pointer: &str) -> Option<Range<usize>> {
        self.lookup(pointer, |s| s.value.clone().or_else(|| s.key.clone()))
    }

    /// The best place to point at for the key of `pointer`: its key, else its value.
    pub fn key_span(&self, pointer: &str) -> Option<Range<usize>> {
        self.lookup(pointer, |s| s.key.clone().or_else(|| s.value.clone()))
    }

    fn lookup(
        &self,
        pointer: &str,
        pick: impl Fn(&Spans) -> Option<Range<usize>>,
    ) -> Option<Range<usize>> {
        let mut pointer = pointer;
        loop {
            if let Some(span) = self.spans.get(pointer).and_then(&pick) {
                return Some(span);
            }
            let (parent, _) = pointer.rsplit_once('/')?;
            pointer = parent;
        }
    }
}

/// Escape one key for a JSON pointer.
pub fn pointer_segment(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['~', '/']) {
        std::borrow::Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        std::borrow::Cow::Borrowed(key)
    }
}

/// A JSON pointer from key segments.
pub fn pointer<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    segments
        .into_iter()
        .map(|s| format!("/{}", pointer_segment(s)))
        .collect()
}

/// The dotted TOML path users read (`images.tools.mounts[0].source`) for a JSON pointer.
pub fn dotted_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            if segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !segment.is_empty()
            {
                out.push_str(&segment);
            } else {
                out.push_str(&format!("{segment:?}"));
            }
        }
    }
    out
}

/// Parse TOML text into a JSON value and its span map. A syntax error is reported alone:
/// after one, a TOML parser cannot know what the rest of the file means.
pub fn parse(source: &SourceFile) -> Result<(Value, SpanMap), Box<Diagnostic>> {
    let document = Document::parse(source.text.as_str()).map_err(|error| {
        let message = error.message().trim_end().to_string();
        let message = message.lines().next().unwrap_or("invalid TOML").to_string();
        // Point at where the parser stopped, on one line: a span running into the next
        // line draws as a confusing bracket.
        let span = error.span().map(|span| {
            let end = source.text[span.start.min(source.text.len())..]
                .find('\n')
                .map_or(span.end, |newline| span.end.min(span.start + newline));
            // At a line end, an empty span draws a caret just after the last character.
            span.start..end.max(span.start)
        });
        Box::new(
            Diagnostic::error("syntax", format!("invalid TOML: {message}"))
                .at("", span)
                .label(message)
                .help("see https://toml.io/en/v1.0.0 for the syntax"),
        )
    })?;
    let mut map = SpanMap::default();
    map.spans.insert(
        String::new(),
        Spans {
            key: None,
            value: Some(0..source.text.len().min(1)),
        },
    );
    let mut walker = Walker {
        map: &mut map,
        too_deep: None,
    };
    let value = walker.table(document.as_table(), "", 0);
    if let Some(at) = walker.too_deep {
        return Err(Box::new(
            Diagnostic::error(
                "too-deep",
                format!("tables or arrays are nested more than {MAX_DEPTH} levels deep"),
            )
            .at(dotted_path(&at), map.value_span(&at))
            .help("outrig.toml needs no more than six levels; check for a runaway dotted key"),
        ));
    }
    Ok((value, map))
}

struct Walker<'m> {
    map: &'m mut SpanMap,
    too_deep: Option<String>,
}

impl Walker<'_> {
    fn record(&mut self, at: &str, key: Option<&Key>, value: Option<Range<usize>>) {
        self.map.spans.insert(
            at.to_string(),
            Spans {
                key: key.and_then(Key::span),
                value,
            },
        );
    }

    fn table(&mut self, table: &Table, at: &str, depth: usize) -> Value {
        let mut object = Map::new();
        if depth > MAX_DEPTH {
            self.too_deep.get_or_insert_with(|| at.to_string());
            return Value::Object(object);
        }
        for (name, item) in table.iter() {
            let child = format!("{at}/{}", pointer_segment(name));
            self.record(&child, table.key(name), item.span());
            if let Some(value) = self.item(item, &child, depth + 1) {
                object.insert(name.to_string(), value);
            }
        }
        Value::Object(object)
    }

    fn item(&mut self, item: &Item, at: &str, depth: usize) -> Option<Value> {
        match item {
            Item::None => None,
            Item::Value(value) => Some(self.value(value, at, depth)),
            Item::Table(table) => Some(self.table(table, at, depth)),
            Item::ArrayOfTables(array) => {
                let mut items = Vec::new();
                for (index, table) in array.iter().enumerate() {
                    let child = format!("{at}/{index}");
                    self.record(&child, None, table.span());
                    items.push(self.table(table, &child, depth + 1));
                }
                Some(Value::Array(items))
            }
        }
    }

    fn value(&mut self, value: &toml_edit::Value, at: &str, depth: usize) -> Value {
        use toml_edit::Value as V;
        if depth > MAX_DEPTH {
            self.too_deep.get_or_insert_with(|| at.to_string());
            return Value::Null;
        }
        match value {
            V::String(s) => Value::String(s.value().clone()),
            V::Integer(i) => Value::Number(Number::from(*i.value())),
            // JSON has no NaN or infinity; a string keeps the value visible in messages
            // and fails any numeric schema check.
            V::Float(f) => Number::from_f64(*f.value())
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.value().to_string())),
            V::Boolean(b) => Value::Bool(*b.value()),
            V::Datetime(d) => Value::String(d.value().to_string()),
            V::Array(array) => {
                let mut items = Vec::with_capacity(array.len());
                for (index, element) in array.iter().enumerate() {
                    let child = format!("{at}/{index}");
                    self.record(&child, None, element.span());
                    items.push(self.value(element, &child, depth + 1));
                }
                Value::Array(items)
            }
            V::InlineTable(table) => {
                let mut object = Map::new();
                for (name, element) in table.iter() {
                    let child = format!("{at}/{}", pointer_segment(name));
                    self.record(&child, table.key(name), element.span());
                    object.insert(name.to_string(), self.value(element, &child, depth + 1));
                }
                Value::Object(object)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans_of(text: &str) -> (Value, SpanMap, SourceFile) {
        let source = SourceFile::new("t.toml", text);
        let (value, map) = parse(&source).unwrap();
        (value, map, source)
    }

    #[test]
    fn values_and_spans() {
        let text =
            "[images.tools]\nfrom = \"x\"\n[images.tools.mcp.fs]\ncommand = [\"a\", \"b\"]\n";
        let (value, map, source) = spans_of(text);
        assert_eq!(value["images"]["tools"]["mcp"]["fs"]["command"][1], "b");
        let span = map.value_span("/images/tools/mcp/fs/command/1").unwrap();
        assert_eq!(&source.text[span], "\"b\"");
        let span = map.key_span("/images/tools/from").unwrap();
        assert_eq!(&source.text[span], "from");
        // a missing child falls back to its parent
        let span = map.value_span("/images/tools/mcp/fs/nope").unwrap();
        assert!(source.text[span].starts_with("command") || !text.is_empty());
    }

    #[test]
    fn dotted_paths_read_like_toml() {
        assert_eq!(
            dotted_path("/images/tools/mounts/0/source"),
            "images.tools.mounts[0].source"
        );
        assert_eq!(dotted_path("/build-args/a~1b"), "build-args.\"a/b\"");
        assert_eq!(dotted_path(""), "");
    }

    #[test]
    fn syntax_error_has_a_place() {
        let source = SourceFile::new("t.toml", "a = 1\nb = \n");
        let error = parse(&source).unwrap_err();
        assert_eq!(error.code, "syntax");
        assert!(error.span.is_some());
    }

    #[test]
    fn runaway_nesting_is_an_error_not_a_crash() {
        let header: Vec<&str> = std::iter::repeat_n("a", 500).collect();
        let source = SourceFile::new("t.toml", format!("[{}]\nx = 1\n", header.join(".")));
        // toml_edit's own recursion limit or ours: either way a diagnostic, not a crash.
        let code = parse(&source).unwrap_err().code;
        assert!(code == "too-deep" || code == "syntax", "{code}");
    }
}
