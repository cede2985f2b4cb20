//! The OpenAI Chat Completions wire format, as OpenAI, Ollama, vLLM, llama.cpp server and
//! LM Studio speak it: requests, replies, and streamed replies (server-sent events whose
//! `delta`s carry text and pieces of tool calls).

use serde_json::{Value, json};

use super::conversation::{Arguments, Message, Reply, Request, ToolCall, Usage};

/// The request body.
pub fn body(request: &Request) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in request.messages {
        match message {
            Message::User(text) => messages.push(json!({"role": "user", "content": text})),
            Message::Assistant { text, calls } => {
                let mut entry = json!({
                    "role": "assistant",
                    "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
                });
                if !calls.is_empty() {
                    entry["tool_calls"] = calls
                        .iter()
                        .map(|c| {
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments.raw()},
                            })
                        })
                        .collect();
                }
                messages.push(entry);
            }
            Message::ToolResult { call_id, content } => {
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}))
            }
        }
    }
    let mut body = json!({"model": request.model, "messages": messages});
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema,
                }})
            })
            .collect();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = request.max_tokens {
        body["max_tokens"] = json!(m);
    }
    if request.stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// A whole (not streamed) reply.
pub fn parse(reply: &Value) -> Result<Reply, String> {
    let message = reply
        .pointer("/choices/0/message")
        .ok_or("no `choices[0].message`")?;
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|call| ToolCall {
                    id: call["id"].as_str().unwrap_or_default().to_string(),
                    name: call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: Arguments::from_wire(call.pointer("/function/arguments")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply {
        text: message
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        calls,
        finish_reason: reply
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        usage: usage(reply.get("usage")),
    })
}

fn usage(value: Option<&Value>) -> Option<Usage> {
    let value = value?;
    Some(Usage {
        input_tokens: value.get("prompt_tokens")?.as_u64()?,
        output_tokens: value
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// A streamed reply being put together from its events.
#[derive(Default)]
pub struct Stream {
    text: String,
    /// Calls by their `index`: id, name, arguments text (or object, as Ollama sends).
    calls: Vec<(String, String, String, Option<Value>)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl Stream {
    /// One event's `data`; the text it adds, if any.
    pub fn feed(&mut self, data: &str) -> Result<Option<String>, String> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let event: Value = serde_json::from_str(data)
            .map_err(|e| format!("a streamed event is not JSON ({e}): {data}"))?;
        if let Some(error) = event.get("error") {
            return Err(format!("the stream reported an error: {error}"));
        }
        if let Some(u) = usage(event.get("usage")) {
            self.usage = Some(u);
        }
        let Some(choice) = event.pointer("/choices/0") else {
            return Ok(None);
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        let Some(delta) = delta else {
            return Ok(None);
        };
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .map_or(self.calls.len().saturating_sub(0), |i| i as usize);
            while self.calls.len() <= index {
                self.calls
                    .push((String::new(), String::new(), String::new(), None));
            }
            let entry = &mut self.calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                entry.0 = id.to_string();
            }
            if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                entry.1.push_str(name);
            }
            match call.pointer("/function/arguments") {
                Some(Value::String(piece)) => entry.2.push_str(piece),
                Some(Value::Null) | None => {}
                Some(other) => entry.3 = Some(other.clone()),
            }
        }
        let text = delta
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if text.is_empty() {
            return Ok(None);
        }
        self.text.push_str(text);
        Ok(Some(text.to_string()))
    }

    /// The reply the events made.
    pub fn finish(self) -> Reply {
        Reply {
            text: self.text,
            calls: self
                .calls
                .into_iter()
                .filter(|(_, name, _, _)| !name.is_empty())
                .map(|(id, name, arguments, object)| ToolCall {
                    id,
                    name,
                    arguments: match object {
                        Some(object) => Arguments::from_wire(Some(&object)),
                        None => Arguments::from_wire(Some(&Value::String(arguments))),
                    },
                })
                .collect(),
            finish_reason: self.finish_reason,
            usage: self.usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_tool_calls_are_assembled() {
        let mut stream = Stream::default();
        for data in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"look."}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"fs__list","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"/w\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5}}"#,
            "[DONE]",
        ] {
            stream.feed(data).unwrap();
        }
        let reply = stream.finish();
        assert_eq!(reply.text, "Let me look.");
        assert_eq!(reply.calls.len(), 1);
        assert_eq!(reply.calls[0].id, "call_1");
        assert_eq!(reply.calls[0].arguments.raw(), r#"{"path":"/w"}"#);
        assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            reply.usage,
            Some(Usage {
                input_tokens: 12,
                output_tokens: 5
            })
        );
    }
}
