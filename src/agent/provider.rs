//! A model provider over HTTP, in either wire format ([`super::openai`] or
//! [`super::anthropic`]), streamed or not, with retries: timeouts, connection errors, 408,
//! 425, 429 and 5xx (529 "overloaded" among them) are retried with jittered exponential
//! backoff that honours `Retry-After`, within the provider's `retry-budget`, unless part of
//! the answer was already printed. Each retry prints one line on stderr.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::conversation::{Reply, Request};
use crate::config::model::ProviderStyle;
use crate::secret::Redactor;

/// Where and how to reach a provider.
pub struct Provider {
    pub name: String,
    pub style: ProviderStyle,
    /// Whether to ask for streamed replies.
    pub stream: bool,
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    request_timeout: Duration,
    retry_budget: Duration,
}

/// Why a completion failed.
#[derive(Debug)]
pub struct ProviderError {
    pub message: String,
    /// The provider cannot serve this turn (its retry budget is spent, or it refused for a
    /// reason that is not the request's: 401, 403, 404): a fallback model may take over.
    pub exhausted: bool,
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One failed attempt.
struct Attempt {
    message: String,
    retryable: bool,
    /// A refusal that is the provider's, not the request's.
    provider_side: bool,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn fatal(message: String) -> Attempt {
        Attempt {
            message,
            retryable: false,
            provider_side: false,
            retry_after: None,
        }
    }
}

/// The longest pause between attempts (a larger `Retry-After` still counts against the
/// budget and ends the retries if it does not fit).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a provider is reached.
pub struct Endpoint<'a> {
    pub name: &'a str,
    pub style: ProviderStyle,
    pub base_url: &'a str,
    pub api_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub request_timeout: Duration,
    pub retry_budget: Duration,
    pub stream: bool,
}

impl Provider {
    pub fn new(endpoint: Endpoint) -> Result<Provider, ProviderError> {
        // A streamed answer may take longer than one request-timeout in all; what must not
        // exceed it is the wait for the next piece.
        let mut http = reqwest::Client::builder()
            .read_timeout(endpoint.request_timeout)
            .connect_timeout(endpoint.request_timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("outrig/", env!("CARGO_PKG_VERSION")));
        if !endpoint.stream {
            http = http.timeout(endpoint.request_timeout);
        }
        let http = http.build().map_err(|e| ProviderError {
            message: format!("cannot set up the HTTP client: {e}"),
            exhausted: false,
        })?;
        let path = match endpoint.style {
            ProviderStyle::Openai => "chat/completions",
            ProviderStyle::Anthropic => "messages",
        };
        Ok(Provider {
            name: endpoint.name.to_string(),
            style: endpoint.style,
            stream: endpoint.stream,
            http,
            url: format!("{}/{path}", endpoint.base_url.trim_end_matches('/')),
            api_key: endpoint.api_key,
            headers: endpoint.headers,
            request_timeout: endpoint.request_timeout,
            retry_budget: endpoint.retry_budget,
        })
    }

    /// Ask for a reply to `request`, retrying within the budget. Text the model writes is
    /// handed to `on_text` as it arrives (all at once when not streamed).
    pub async fn complete(
        &self,
        request: &Request<'_>,
        on_text: &mut (dyn FnMut(&str) + Send),
        redactor: &Redactor,
    ) -> Result<Reply, ProviderError> {
        let body = match self.style {
            ProviderStyle::Openai => super::openai::body(request),
            ProviderStyle::Anthropic => super::anthropic::body(request),
        };
        let started = Instant::now();
        let mut attempt_number = 0u32;
        loop {
            attempt_number += 1;
            let mut printed = false;
            let failure = match self.attempt(&body, on_text, &mut printed).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            let message = redactor.redact(&failure.message);
            if printed {
                return Err(ProviderError {
                    message: format!("{message} (after part of the answer was printed)"),
                    exhausted: false,
                });
            }
            if !failure.retryable {
                return Err(ProviderError {
                    message,
                    exhausted: failure.provider_side,
                });
            }
            let backoff = failure
                .retry_after
                .unwrap_or_else(|| backoff(attempt_number));
            let spent = started.elapsed();
            if spent + backoff > self.retry_budget {
                return Err(ProviderError {
                    message: format!(
                        "gave up after {attempt_number} attempts in {:.1} s (retry-budget {:.0} s): {message}",
                        spent.as_secs_f64(),
                        self.retry_budget.as_secs_f64()
                    ),
                    exhausted: true,
                });
            }
            crate::output::status!(
                "  provider `{}`: {message}; retrying in {:.1} s (attempt {}, {:.0} s of the retry budget left)",
                self.name,
                backoff.as_secs_f64(),
                attempt_number + 1,
                (self.retry_budget - spent).as_secs_f64()
            );
            tokio::time::sleep(backoff).await;
        }
    }

    async fn attempt(
        &self,
        body: &Value,
        on_text: &mut (dyn FnMut(&str) + Send),
        printed: &mut bool,
    ) -> Result<Reply, Attempt> {
        let mut request = self.http.post(&self.url).json(body);
        match (self.style, &self.api_key) {
            (ProviderStyle::Openai, Some(key)) => request = request.bearer_auth(key),
            (ProviderStyle::Anthropic, key) => {
                request = request.header("anthropic-version", super::anthropic::VERSION);
                if let Some(key) = key {
                    request = request.header("x-api-key", key);
                }
            }
            (ProviderStyle::Openai, None) => {}
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| Attempt {
            retryable: e.is_timeout() || e.is_connect() || e.is_request(),
            provider_side: false,
            message: describe(&e, &self.url),
            retry_after: None,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let streamed = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if status.is_success() && streamed {
            return self.read_stream(response, on_text, printed).await;
        }
        let text = read_body(response, &self.url).await?;
        if !status.is_success() {
            let code = status.as_u16();
            return Err(Attempt {
                retryable: matches!(code, 408 | 425 | 429) || status.is_server_error(),
                provider_side: matches!(code, 401 | 403 | 404),
                message: format!("{status} from {}: {}", self.url, excerpt(&text)),
                retry_after: retry_after.map(|d| d.min(MAX_BACKOFF * 4)),
            });
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            Attempt::fatal(format!(
                "{} answered with something that is not a reply ({e}): {}",
                self.url,
                excerpt(&text)
            ))
        })?;
        let reply = match self.style {
            ProviderStyle::Openai => super::openai::parse(&value),
            ProviderStyle::Anthropic => super::anthropic::parse(&value),
        }
        .map_err(|why| Attempt::fatal(format!("{}: {why}: {}", self.url, excerpt(&text))))?;
        if !reply.text.is_empty() {
            on_text(&reply.text);
        }
        Ok(reply)
    }

    /// A streamed reply: server-sent events, each `data:` handed to the format's assembler,
    /// text passed on as it comes. A stall longer than the request-timeout ends it.
    async fn read_stream(
        &self,
        mut response: reqwest::Response,
        on_text: &mut (dyn FnMut(&str) + Send),
        printed: &mut bool,
    ) -> Result<Reply, Attempt> {
        enum Assembler {
            Openai(super::openai::Stream),
            Anthropic(super::anthropic::Stream),
        }
        let mut assembler = match self.style {
            ProviderStyle::Openai => Assembler::Openai(Default::default()),
            ProviderStyle::Anthropic => Assembler::Anthropic(Default::default()),
        };
        let mut pending: Vec<u8> = Vec::new();
        let mut data = String::new();
        let mut total = 0usize;
        loop {
            let chunk = match tokio::time::timeout(self.request_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(Attempt {
                        retryable: true,
                        provider_side: false,
                        message: format!(
                            "the stream from {} stalled for longer than the request-timeout",
                            self.url
                        ),
                        retry_after: None,
                    });
                }
                Ok(Err(e)) => {
                    return Err(Attempt {
                        retryable: true,
                        provider_side: false,
                        message: if e.is_timeout() {
                            format!(
                                "the stream from {} stalled for longer than the request-timeout",
                                self.url
                            )
                        } else {
                            describe(&e, &self.url)
                        },
                        retry_after: None,
                    });
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            total += chunk.len();
            if total > MAX_REPLY_BYTES {
                return Err(Attempt::fatal(format!(
                    "{} sent a reply larger than {} MiB",
                    self.url,
                    MAX_REPLY_BYTES >> 20
                )));
            }
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if data.is_empty() {
                        continue;
                    }
                    let event = std::mem::take(&mut data);
                    let text = match &mut assembler {
                        Assembler::Openai(s) => s.feed(&event),
                        Assembler::Anthropic(s) => s.feed(&event),
                    }
                    .map_err(|why| Attempt::fatal(format!("{}: {why}", self.url)))?;
                    if let Some(text) = text {
                        *printed = true;
                        on_text(&text);
                    }
                } else if let Some(value) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
        }
        if !data.is_empty() {
            let text = match &mut assembler {
                Assembler::Openai(s) => s.feed(&data),
                Assembler::Anthropic(s) => s.feed(&data),
            }
            .map_err(|why| Attempt::fatal(format!("{}: {why}", self.url)))?;
            if let Some(text) = text {
                *printed = true;
                on_text(&text);
            }
        }
        Ok(match assembler {
            Assembler::Openai(s) => s.finish(),
            Assembler::Anthropic(s) => s.finish(),
        })
    }
}

/// The most of a reply outrig reads: an endpoint cannot make it hold more.
const MAX_REPLY_BYTES: usize = 32 << 20;

async fn read_body(mut response: reqwest::Response, url: &str) -> Result<String, Attempt> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_REPLY_BYTES {
                    return Err(Attempt::fatal(format!(
                        "{url} sent a reply larger than {} MiB",
                        MAX_REPLY_BYTES >> 20
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(String::from_utf8_lossy(&body).into_owned()),
            Err(e) => {
                return Err(Attempt {
                    retryable: true,
                    provider_side: false,
                    message: describe(&e, url),
                    retry_after: None,
                });
            }
        }
    }
}

/// Exponential backoff with full jitter: up to 0.5 s × 2^(n-1), at most `MAX_BACKOFF`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(500)
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(MAX_BACKOFF);
    let jitter: f64 = rand::random::<f64>();
    ceiling.mul_f64(0.5 + jitter / 2.0)
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?;
    let wait = date.timestamp().duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

fn describe(error: &reqwest::Error, url: &str) -> String {
    if error.is_timeout() {
        format!("no answer from {url} within the request-timeout")
    } else if error.is_connect() {
        format!("cannot connect to {url}")
    } else {
        format!("request to {url} failed: {error}")
    }
}

/// The start of a reply body, for error messages.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 2.5 "),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let b = backoff(attempt);
            assert!(b <= MAX_BACKOFF, "{b:?}");
            assert!(b >= Duration::from_millis(250));
        }
    }
}
