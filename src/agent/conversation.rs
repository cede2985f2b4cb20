//! The conversation in outrig's own terms, whatever API carries it: messages, tool calls
//! with their arguments exactly as the model sent them, a reply, token usage. Each wire
//! format ([`super::openai`], [`super::anthropic`]) turns these into its requests and its
//! replies into these, so one agent loop, transcript and set of limits serve both — and a
//! turn can move to a fallback model of another API halfway.

use serde_json::Value;

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    User(String),
    Assistant {
        text: String,
        calls: Vec<ToolCall>,
    },
    /// The result of the call `call_id`.
    ToolResult {
        call_id: String,
        content: String,
    },
}

/// A tool call as the model asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Unique within the conversation (generated when the model gave none, or a duplicate).
    pub id: String,
    pub name: String,
    pub arguments: Arguments,
}

/// A call's arguments: an object, or what the model sent instead and why it cannot be used
/// (a tool never runs with arguments the model did not send).
#[derive(Debug, Clone, PartialEq)]
pub enum Arguments {
    Object(serde_json::Map<String, Value>),
    Invalid { raw: String, why: String },
}

impl Arguments {
    /// Arguments as they arrive on the wire: a JSON string holding an object (OpenAI), or
    /// the object itself (Ollama, Anthropic). An empty string or null is an empty object.
    pub fn from_wire(value: Option<&Value>) -> Arguments {
        match value {
            None | Some(Value::Null) => Arguments::Object(Default::default()),
            Some(Value::Object(map)) => Arguments::Object(map.clone()),
            Some(Value::String(text)) if text.trim().is_empty() => {
                Arguments::Object(Default::default())
            }
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Arguments::Object(map),
                Ok(other) => Arguments::Invalid {
                    raw: text.clone(),
                    why: format!("the arguments must be a JSON object, not `{other}`"),
                },
                Err(e) => Arguments::Invalid {
                    raw: text.clone(),
                    why: format!("the arguments are not valid JSON: {e}"),
                },
            },
            Some(other) => Arguments::Invalid {
                raw: other.to_string(),
                why: format!("the arguments must be a JSON object, not `{other}`"),
            },
        }
    }

    /// The arguments as the model sent them, as text.
    pub fn raw(&self) -> String {
        match self {
            Arguments::Object(map) => Value::Object(map.clone()).to_string(),
            Arguments::Invalid { raw, .. } => raw.clone(),
        }
    }
}

/// What the model answered in one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// Tokens a request cost, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// Everything one request asks.
pub struct Request<'a> {
    pub model: &'a str,
    pub system: Option<&'a str>,
    pub messages: &'a [Message],
    /// The tools: name, description, JSON Schema of the input.
    pub tools: &'a [ToolSpec],
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub stream: bool,
}

/// A tool as the model is told about it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// Give every call a unique id: one the model left out or repeated gets `call_<n>`, `n`
/// counting from `next`.
pub fn unique_ids(calls: &mut [ToolCall], taken: &mut std::collections::HashSet<String>) {
    for call in calls {
        if call.id.is_empty() || taken.contains(&call.id) {
            let mut n = taken.len();
            loop {
                let candidate = format!("call_outrig_{n}");
                if !taken.contains(&candidate) {
                    call.id = candidate;
                    break;
                }
                n += 1;
            }
        }
        taken.insert(call.id.clone());
    }
}

/// Whether a text answer looks like a tool call the endpoint did not parse (Hermes-style
/// `<tool_call>` tags, or a bare `{"name": ..., "arguments": ...}` object).
pub fn looks_like_unparsed_call(text: &str) -> bool {
    let trimmed = text.trim();
    if trimmed.contains("<tool_call>") || trimmed.contains("<|tool_call|>") {
        return true;
    }
    matches!(
        serde_json::from_str::<Value>(trimmed),
        Ok(Value::Object(map)) if map.contains_key("name")
            && (map.contains_key("arguments") || map.contains_key("parameters"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_arrive_as_strings_or_objects() {
        let object = json!({"path": "/workspace"});
        let expected = Arguments::Object(object.as_object().unwrap().clone());
        assert_eq!(Arguments::from_wire(Some(&object)), expected);
        assert_eq!(
            Arguments::from_wire(Some(&json!(object.to_string()))),
            expected
        );
        assert_eq!(
            Arguments::from_wire(None),
            Arguments::Object(Default::default())
        );
        assert_eq!(
            Arguments::from_wire(Some(&json!(""))),
            Arguments::Object(Default::default())
        );
        for bad in [json!("{oops"), json!("[1]"), json!(42), json!([1])] {
            assert!(
                matches!(Arguments::from_wire(Some(&bad)), Arguments::Invalid { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_and_duplicate_ids_are_made_unique() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "t".into(),
            arguments: Arguments::Object(Default::default()),
        };
        let mut taken = std::collections::HashSet::new();
        let mut calls = vec![call(""), call(""), call("a"), call("a")];
        unique_ids(&mut calls, &mut taken);
        let ids: Vec<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 4);
        let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), 4, "{ids:?}");
        assert_eq!(ids[2], "a");
    }

    #[test]
    fn unparsed_calls_are_recognised() {
        assert!(looks_like_unparsed_call(
            "<tool_call>\n{\"name\": \"git__status\", \"arguments\": {}}\n</tool_call>"
        ));
        assert!(looks_like_unparsed_call(
            r#"{"name": "fs__list", "arguments": {"path": "."}}"#
        ));
        assert!(!looks_like_unparsed_call("The workspace holds hello.txt."));
    }
}
