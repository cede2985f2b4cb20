//! The stdio transport outrig uses towards a server in a sandbox: newline-delimited JSON-RPC
//! like rmcp's own, but with memory bounded by the server's `result-max-bytes`. A message
//! longer than that is never held whole: outrig keeps its first `limit` bytes and its last
//! few hundred, streams past the rest, and — when it was a response — answers the waiting
//! request with a result truncated at the limit and a marker saying so. (rmcp's transport
//! would drop such a line, leaving the call to hang until its timeout.)

use std::sync::Arc;

use rmcp::RoleClient;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonRpcMessage, NumberOrString, RequestId, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Bytes kept from the end of an oversized message, to find its `id` there (the
/// TypeScript SDK writes `id` last).
const TAIL: usize = 512;

/// A client-side transport over a server's stdout and stdin.
pub struct BoundedStdio<R, W> {
    read: BufReader<R>,
    write: Arc<Mutex<W>>,
    limit: usize,
    line: Vec<u8>,
    /// Set while streaming past the rest of an oversized message.
    oversized: Option<Oversized>,
}

/// What is kept of a message that went over the limit.
struct Oversized {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
}

/// The reading outcome, decided while `fill_buf`'s borrow is held.
enum Step {
    More,
    Line,
    OversizedEnd,
}

impl<R, W> BoundedStdio<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    /// Messages longer than `limit` bytes are truncated (responses) or dropped (anything
    /// else).
    pub fn new(read: R, write: W, limit: usize) -> Self {
        BoundedStdio {
            read: BufReader::with_capacity(64 * 1024, read),
            write: Arc::new(Mutex::new(write)),
            limit: limit.max(1024),
            line: Vec::new(),
            oversized: None,
        }
    }

    /// Read up to the end of the next line. Cancel-safe: partial progress stays in `self`.
    async fn next_line(&mut self) -> std::io::Result<Option<Step>> {
        loop {
            let (consumed, step) = {
                let available = self.read.fill_buf().await?;
                if available.is_empty() {
                    return Ok(None);
                }
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |i| i + 1);
                let chunk = &available[..take];
                if let Some(over) = self.oversized.as_mut() {
                    over.total += take as u64;
                    over.tail.extend_from_slice(chunk);
                    if over.tail.len() > TAIL {
                        over.tail.drain(..over.tail.len() - TAIL);
                    }
                    (
                        take,
                        if newline.is_some() {
                            Step::OversizedEnd
                        } else {
                            Step::More
                        },
                    )
                } else if self.line.len() + take > self.limit {
                    let mut head = std::mem::take(&mut self.line);
                    let room = self.limit.saturating_sub(head.len());
                    head.extend_from_slice(&chunk[..room.min(chunk.len())]);
                    let start = chunk.len().saturating_sub(TAIL);
                    self.oversized = Some(Oversized {
                        total: (head.len() - room.min(chunk.len())) as u64 + take as u64,
                        head,
                        tail: chunk[start..].to_vec(),
                    });
                    (
                        take,
                        if newline.is_some() {
                            Step::OversizedEnd
                        } else {
                            Step::More
                        },
                    )
                } else {
                    self.line.extend_from_slice(chunk);
                    (
                        take,
                        if newline.is_some() {
                            Step::Line
                        } else {
                            Step::More
                        },
                    )
                }
            };
            self.read.consume(consumed);
            match step {
                Step::More => continue,
                step => return Ok(Some(step)),
            }
        }
    }
}

impl<R, W> rmcp::transport::Transport<RoleClient> for BoundedStdio<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        async move {
            let mut bytes = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            let mut write = write.lock().await;
            write.write_all(&bytes).await?;
            write.flush().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let step = match self.next_line().await {
                Ok(Some(step)) => step,
                Ok(None) | Err(_) => return None,
            };
            match step {
                Step::Line => {
                    let line = std::mem::take(&mut self.line);
                    let trimmed = line.trim_ascii();
                    if trimmed.is_empty() {
                        continue;
                    }
                    // Anything that is not a JSON-RPC message (a stray log line on stdout)
                    // is skipped, as rmcp does.
                    if let Ok(message) = serde_json::from_slice(trimmed) {
                        self.line = line;
                        self.line.clear();
                        return Some(message);
                    }
                    self.line = line;
                    self.line.clear();
                }
                Step::OversizedEnd => {
                    let over = self.oversized.take().expect("set while oversized");
                    if let Some(message) = truncated_response(&over, self.limit) {
                        return Some(message);
                    }
                }
                Step::More => unreachable!("next_line returns only at the end of a line"),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.write.lock().await.shutdown().await
    }
}

/// A response standing in for an oversized one: its id, and the start of its first text
/// content up to the limit, followed by a marker. `None` when the message was not a
/// response (its id could not be found).
fn truncated_response(over: &Oversized, limit: usize) -> Option<ServerJsonRpcMessage> {
    let head = &over.head;
    if starts_member(head, b"\"method\"") {
        return None;
    }
    let id = find_id(head, &over.tail)?;
    let is_error_response = starts_member(head, b"\"error\"");
    let mut text = first_text(head).unwrap_or_default();
    let mut cut = text.len().min(limit);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "[truncated by outrig: the server's reply was {} bytes, over this server's result-max-bytes of {limit}]",
        over.total
    ));
    let result = if is_error_response {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    Some(JsonRpcMessage::response(
        ServerResult::CallToolResult(result),
        id,
    ))
}

/// Whether `member` appears as a key before any `"result"` key (a cheap look at the head).
fn starts_member(head: &[u8], member: &[u8]) -> bool {
    let at = |needle: &[u8]| head.windows(needle.len()).position(|w| w == needle);
    match (at(member), at(b"\"result\"")) {
        (Some(e), Some(r)) => e < r,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The message's top-level `id`: before `"result"` in the head (Python SDK order), or the
/// last `"id":` in the tail (TypeScript SDK order).
fn find_id(head: &[u8], tail: &[u8]) -> Option<RequestId> {
    let needle = b"\"id\":";
    let result_at = head
        .windows(8)
        .position(|w| w == b"\"result\"")
        .unwrap_or(head.len());
    let in_head = head[..result_at]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| &head[p + needle.len()..]);
    let in_tail = || {
        tail.windows(needle.len())
            .rposition(|w| w == needle)
            .map(|p| &tail[p + needle.len()..])
    };
    let rest = in_head.or_else(in_tail)?;
    let value = serde_json::Deserializer::from_slice(rest)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    match value {
        serde_json::Value::Number(n) => n.as_i64().map(NumberOrString::Number),
        serde_json::Value::String(s) => Some(NumberOrString::String(s.into())),
        _ => None,
    }
}

/// The decoded start of the first `"text":"…"` string in `head`, as far as it goes.
fn first_text(head: &[u8]) -> Option<String> {
    let needle = b"\"text\":\"";
    let start = head.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let bytes = &head[start..];
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' => {
                let Some(&escape) = bytes.get(i + 1) else {
                    break;
                };
                let simple = match escape {
                    b'"' => Some(b'"'),
                    b'\\' => Some(b'\\'),
                    b'/' => Some(b'/'),
                    b'b' => Some(8),
                    b'f' => Some(12),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    _ => None,
                };
                if let Some(byte) = simple {
                    out.push(byte);
                    i += 2;
                } else if escape == b'u' {
                    let Some(hex) = bytes.get(i + 2..i + 6) else {
                        break;
                    };
                    let code = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok());
                    let c = code.and_then(char::from_u32).unwrap_or('\u{FFFD}');
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                } else {
                    break;
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::transport::Transport;

    async fn receive_from(input: Vec<u8>, limit: usize) -> Vec<serde_json::Value> {
        let (mut server, client) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            server.write_all(&input).await.unwrap();
            server.shutdown().await.unwrap();
            server
        });
        let mut transport = BoundedStdio::new(client, tokio::io::sink(), limit);
        let mut messages = Vec::new();
        while let Some(message) = transport.receive().await {
            messages.push(serde_json::to_value(&message).unwrap());
        }
        drop(writer.await);
        messages
    }

    #[tokio::test]
    async fn small_messages_pass_and_noise_is_skipped() {
        let input =
            b"not json\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n".to_vec();
        let messages = receive_from(input, 4096).await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["id"], 1);
    }

    #[tokio::test]
    async fn an_oversized_result_is_truncated_with_its_id_kept() {
        for id_last in [false, true] {
            let big = "é".repeat(40_000);
            let result = serde_json::json!({"content": [{"type": "text", "text": big}]});
            let line = if id_last {
                format!(r#"{{"result":{result},"jsonrpc":"2.0","id":7}}"#)
            } else {
                format!(r#"{{"jsonrpc":"2.0","id":7,"result":{result}}}"#)
            };
            let mut input = line.into_bytes();
            input.push(b'\n');
            input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{}}\n");
            let messages = receive_from(input, 2048).await;
            assert_eq!(messages.len(), 2, "{messages:?}");
            assert_eq!(messages[0]["id"], 7);
            let text = messages[0]["result"]["content"][0]["text"]
                .as_str()
                .unwrap();
            assert!(text.starts_with("éé"));
            assert!(text.contains("[truncated by outrig: the server's reply was 80"));
            assert!(text.len() < 2300);
            assert_eq!(messages[1]["id"], 8);
        }
    }

    #[tokio::test]
    async fn an_oversized_notification_is_dropped() {
        let noise = "x".repeat(10_000);
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"data\":\"{noise}\"}}}}\n"
        );
        assert!(receive_from(line.into_bytes(), 1024).await.is_empty());
    }
}
