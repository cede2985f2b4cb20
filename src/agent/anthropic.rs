//! The Anthropic Messages API wire format: `system` apart from the messages, content as
//! blocks (`text`, `tool_use`, `tool_result`), tool results as user messages, `max_tokens`
//! required, and streamed replies as typed events (`message_start`, `content_block_start`,
//! `content_block_delta` with `text_delta` or `input_json_delta`, `message_delta`,
//! `message_stop`).

use serde_json::{Value, json};

use super::conversation::{Arguments, Message, Reply, Request, ToolCall, Usage};

/// The API version outrig speaks (the `anthropic-version` header).
pub const VERSION: &str = "2023-06-01";

/// `max_tokens` when the model sets none: the Messages API requires one.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The request body.
pub fn body(request: &Request) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    // Consecutive tool results go back together, in one user message.
    let mut results: Vec<Value> = Vec::new();
    let flush = |messages: &mut Vec<Value>, results: &mut Vec<Value>| {
        if !results.is_empty() {
            messages.push(json!({"role": "user", "content": std::mem::take(results)}));
        }
    };
    for message in request.messages {
        match message {
            Message::ToolResult { call_id, content } => results.push(json!({
                "type": "tool_result", "tool_use_id": call_id, "content": content,
            })),
            Message::User(text) => {
                flush(&mut messages, &mut results);
                messages.push(json!({"role": "user", "content": text}));
            }
            Message::Assistant { text, calls } => {
                flush(&mut messages, &mut results);
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in calls {
                    let input = match &call.arguments {
                        Arguments::Object(map) => Value::Object(map.clone()),
                        Arguments::Invalid { .. } => json!({}),
                    };
                    blocks.push(json!({
                        "type": "tool_use", "id": call.id, "name": call.name, "input": input,
                    }));
                }
                messages.push(json!({"role": "assistant", "content": blocks}));
            }
        }
    }
    flush(&mut messages, &mut results);
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    if let Some(system) = request.system {
        body["system"] = json!(system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if request.stream {
        body["stream"] = json!(true);
    }
    body
}

/// A whole (not streamed) reply.
pub fn parse(reply: &Value) -> Result<Reply, String> {
    if reply.get("type").and_then(Value::as_str) == Some("error") {
        return Err(format!(
            "the API answered with an error: {}",
            reply["error"]
        ));
    }
    let blocks = reply
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` blocks")?;
    let mut out = Reply {
        finish_reason: reply
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        usage: usage(reply.get("usage"), None),
        ..Reply::default()
    };
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => out
                .text
                .push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => out.calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_string(),
                name: block["name"].as_str().unwrap_or_default().to_string(),
                arguments: Arguments::from_wire(block.get("input")),
            }),
            _ => {}
        }
    }
    Ok(out)
}

fn usage(value: Option<&Value>, earlier: Option<Usage>) -> Option<Usage> {
    let value = value?;
    let mut usage = earlier.unwrap_or_default();
    if let Some(input) = value.get("input_tokens").and_then(Value::as_u64) {
        usage.input_tokens = input;
    }
    if let Some(output) = value.get("output_tokens").and_then(Value::as_u64) {
        usage.output_tokens = output;
    }
    Some(usage)
}

/// A block being streamed: text, or a tool use whose input arrives as JSON pieces.
enum Block {
    Text,
    ToolUse {
        id: String,
        name: String,
        input: String,
    },
    Other,
}

/// A streamed reply being put together from its events.
#[derive(Default)]
pub struct Stream {
    text: String,
    blocks: Vec<Block>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl Stream {
    /// One event's `data`; the text it adds, if any.
    pub fn feed(&mut self, data: &str) -> Result<Option<String>, String> {
        let event: Value = serde_json::from_str(data)
            .map_err(|e| format!("a streamed event is not JSON ({e}): {data}"))?;
        match event.get("type").and_then(Value::as_str) {
            Some("error") => Err(format!("the stream reported an error: {}", event["error"])),
            Some("message_start") => {
                self.usage = usage(event.pointer("/message/usage"), self.usage);
                Ok(None)
            }
            Some("content_block_start") => {
                let block = &event["content_block"];
                let index = event["index"].as_u64().unwrap_or(self.blocks.len() as u64) as usize;
                while self.blocks.len() <= index {
                    self.blocks.push(Block::Other);
                }
                self.blocks[index] = match block["type"].as_str() {
                    Some("text") => Block::Text,
                    Some("tool_use") => Block::ToolUse {
                        id: block["id"].as_str().unwrap_or_default().to_string(),
                        name: block["name"].as_str().unwrap_or_default().to_string(),
                        input: String::new(),
                    },
                    _ => Block::Other,
                };
                let text = block["text"].as_str().unwrap_or_default();
                if !text.is_empty() {
                    self.text.push_str(text);
                    return Ok(Some(text.to_string()));
                }
                Ok(None)
            }
            Some("content_block_delta") => {
                let index = event["index"].as_u64().unwrap_or(0) as usize;
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        self.text.push_str(text);
                        Ok((!text.is_empty()).then(|| text.to_string()))
                    }
                    Some("input_json_delta") => {
                        if let Some(Block::ToolUse { input, .. }) = self.blocks.get_mut(index) {
                            input.push_str(delta["partial_json"].as_str().unwrap_or_default());
                        }
                        Ok(None)
                    }
                    _ => Ok(None),
                }
            }
            Some("message_delta") => {
                if let Some(reason) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(reason.to_string());
                }
                self.usage = usage(event.get("usage"), self.usage);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// The reply the events made.
    pub fn finish(self) -> Reply {
        Reply {
            text: self.text,
            calls: self
                .blocks
                .into_iter()
                .filter_map(|block| match block {
                    Block::ToolUse { id, name, input } => Some(ToolCall {
                        id,
                        name,
                        arguments: Arguments::from_wire(Some(&Value::String(input))),
                    }),
                    _ => None,
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
    use crate::agent::conversation::ToolSpec;

    #[test]
    fn tool_results_go_back_as_one_user_message() {
        let call = ToolCall {
            id: "toolu_1".into(),
            name: "fs__list".into(),
            arguments: Arguments::Object(Default::default()),
        };
        let messages = [
            Message::User("hi".into()),
            Message::Assistant {
                text: "Looking.".into(),
                calls: vec![
                    call.clone(),
                    ToolCall {
                        id: "toolu_2".into(),
                        ..call
                    },
                ],
            },
            Message::ToolResult {
                call_id: "toolu_1".into(),
                content: "a".into(),
            },
            Message::ToolResult {
                call_id: "toolu_2".into(),
                content: "b".into(),
            },
        ];
        let tools = [ToolSpec {
            name: "fs__list".into(),
            description: "List".into(),
            input_schema: json!({"type": "object"}),
        }];
        let body = body(&Request {
            model: "claude",
            system: Some("Be careful."),
            messages: &messages,
            tools: &tools,
            temperature: None,
            max_tokens: None,
            stream: false,
        });
        assert_eq!(body["system"], "Be careful.");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        let sent = body["messages"].as_array().unwrap();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[1]["content"][1]["type"], "tool_use");
        assert_eq!(sent[2]["role"], "user");
        assert_eq!(sent[2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    }

    #[test]
    fn streamed_events_are_assembled() {
        let mut stream = Stream::default();
        for data in [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"time__now","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"tz\": "}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"UTC\"}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":15}}"#,
            r#"{"type":"message_stop"}"#,
        ] {
            stream.feed(data).unwrap();
        }
        let reply = stream.finish();
        assert_eq!(reply.text, "Checking");
        assert_eq!(reply.calls[0].id, "toolu_9");
        assert_eq!(reply.calls[0].arguments.raw(), r#"{"tz":"UTC"}"#);
        assert_eq!(reply.finish_reason.as_deref(), Some("tool_use"));
        assert_eq!(
            reply.usage,
            Some(Usage {
                input_tokens: 25,
                output_tokens: 15
            })
        );
    }
}
