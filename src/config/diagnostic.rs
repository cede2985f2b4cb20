//! Config diagnostics: one type for syntax, schema and semantic problems alike, rendered
//! the way rustc and cargo draw them (`--> outrig.toml:12:5`, a gutter, carets) or as data.

use std::ops::Range;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

/// How bad a problem is. Errors make the config invalid; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable, machine-readable kind, for example `unknown-key` or `unknown-reference`.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Dotted TOML path of the offending key or value (`images.tools.mcp.fs.command`),
    /// empty for the whole file.
    pub path: String,
    /// Byte range in the source the carets point at.
    pub span: Option<Range<usize>>,
    /// Text printed next to the carets.
    pub label: Option<String>,
    /// What to do about it, including "did you mean".
    pub help: Option<String>,
    /// The text under `span` may be a secret pasted by mistake: the snippet shows it
    /// masked.
    pub redact: bool,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            path: String::new(),
            span: None,
            label: None,
            help: None,
            redact: false,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, path: impl Into<String>, span: Option<Range<usize>>) -> Self {
        self.path = path.into();
        self.span = span;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn redacted(mut self) -> Self {
        self.redact = true;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A config file's text, with what is needed to turn byte offsets into lines and columns.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name diagnostics show: the path as the user would type it.
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// Line and column of a byte offset (clamped to the text, and to a char boundary).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let column = self.text[self.line_starts[line]..offset].chars().count() + 1;
        Position {
            line: line + 1,
            column,
        }
    }
}

/// A diagnostic as data, for `--format json`.
#[derive(Debug, Serialize)]
pub struct DiagnosticRecord<'a> {
    pub severity: Severity,
    pub code: &'a str,
    pub message: &'a str,
    pub file: &'a str,
    /// Dotted TOML path; empty for the whole file.
    pub path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<&'a str>,
}

impl Diagnostic {
    pub fn record<'a>(&'a self, source: &'a SourceFile) -> DiagnosticRecord<'a> {
        DiagnosticRecord {
            severity: self.severity,
            code: self.code,
            message: &self.message,
            file: &source.name,
            path: &self.path,
            start: self.span.as_ref().map(|s| source.position(s.start)),
            end: self.span.as_ref().map(|s| source.position(s.end)),
            label: self.label.as_deref(),
            help: self.help.as_deref(),
        }
    }

    /// Render like rustc: title, `-->` location, snippet with carets, help.
    pub fn render(&self, source: &SourceFile, color: bool) -> String {
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let span = self
            .span
            .as_ref()
            .map(|span| clamp_span(span.clone(), &source.text));
        let text = match &span {
            Some(span) if self.redact => std::borrow::Cow::Owned(mask(&source.text, span.clone())),
            _ => std::borrow::Cow::Borrowed(source.text.as_str()),
        };
        let mut title = level.primary_title(self.message.as_str());
        if !self.path.is_empty() {
            title = title.id(self.code);
        }
        let mut group = Group::with_title(title);
        match span {
            Some(span) => {
                // Only the lines the span covers go to the renderer: rendering a snippet
                // costs as much as the text it is given, and a file may be megabytes.
                let from = text[..span.start].rfind('\n').map_or(0, |at| at + 1);
                let to = text[span.end..]
                    .find('\n')
                    .map_or(text.len(), |at| span.end + at);
                let line = source.position(from).line;
                let mut annotation =
                    AnnotationKind::Primary.span(span.start - from..span.end - from);
                if let Some(label) = &self.label {
                    annotation = annotation.label(label.as_str());
                }
                group = group.element(
                    Snippet::source(&text[from..to])
                        .line_start(line)
                        .path(source.name.as_str())
                        .fold(true)
                        .annotation(annotation),
                );
            }
            None => {
                group = group.element(Level::NOTE.message(format!("in `{}`", source.name)));
            }
        }
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        renderer.render(&[group])
    }
}

/// The text with everything inside `span` but quotes replaced by `*`, one per character,
/// so columns stay where they were.
fn mask(text: &str, span: Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..span.start]);
    for c in text[span.clone()].chars() {
        out.push(if c == '"' || c == '\'' { c } else { '*' });
    }
    out.push_str(&text[span.end..]);
    out
}

/// Keep a span inside the text and on char boundaries, and never empty (an empty span
/// draws no caret).
fn clamp_span(span: Range<usize>, text: &str) -> Range<usize> {
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(span.start);
    let mut end = floor(span.end.max(start));
    if end == start && start < text.len() && !text[start..].starts_with(['\n', '\r']) {
        end = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let source = SourceFile::new("x.toml", "a = 1\nb = \"é\" x\n");
        assert_eq!(source.position(0), Position { line: 1, column: 1 });
        assert_eq!(source.position(6), Position { line: 2, column: 1 });
        // byte 13 is after the two-byte é and the quote
        assert_eq!(source.position(13), Position { line: 2, column: 7 });
        assert_eq!(source.position(999).line, 3);
    }

    #[test]
    fn renders_location_snippet_and_help() {
        let source = SourceFile::new("outrig.toml", "[agents.coder]\nmodle = \"fast\"\n");
        let diagnostic = Diagnostic::error("unknown-key", "unknown key `modle` in `agents.coder`")
            .at("agents.coder.modle", Some(15..20))
            .label("not a key of an agent")
            .help("did you mean `model`?");
        let text = diagnostic.render(&source, false);
        assert!(text.contains("outrig.toml:2:1"), "{text}");
        assert!(text.contains("^^^^^"), "{text}");
        assert!(text.contains("help: did you mean `model`?"), "{text}");
    }
}
