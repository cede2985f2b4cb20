//! An OpenAI-compatible Chat Completions endpoint (OpenAI, Ollama, vLLM, llama.cpp server,
//! LM Studio, OpenRouter), with retries: timeouts, connection errors, 408, 425, 429 and 5xx
//! are retried with jittered exponential backoff that honours `Retry-After`, within the
//! provider's `retry-budget`. Each retry prints one line on stderr.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::secret::Redactor;

/// Where and how to reach a provider.
pub struct Provider {
    pub name: String,
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    retry_budget: Duration,
}

/// Why a completion failed.
#[derive(Debug)]
pub struct ProviderError {
    pub message: String,
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
    retry_after: Option<Duration>,
}

/// The longest pause between attempts (a larger `Retry-After` still counts against the
/// budget and ends the retries if it does not fit).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Provider {
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<String>,
        headers: Vec<(String, String)>,
        request_timeout: Duration,
        retry_budget: Duration,
    ) -> Result<Provider, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("outrig/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError {
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Provider {
            name: name.to_string(),
            http,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            headers,
            retry_budget,
        })
    }

    /// POST `body` to `/chat/completions` and return the parsed reply, retrying within the
    /// budget.
    pub async fn complete(
        &self,
        body: &Value,
        redactor: &Redactor,
    ) -> Result<Value, ProviderError> {
        let started = Instant::now();
        let mut attempt_number = 0u32;
        loop {
            attempt_number += 1;
            let failure = match self.attempt(body).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            let message = redactor.redact(&failure.message);
            if !failure.retryable {
                return Err(ProviderError { message });
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

    async fn attempt(&self, body: &Value) -> Result<Value, Attempt> {
        let mut request = self.http.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| Attempt {
            retryable: e.is_timeout() || e.is_connect() || e.is_request(),
            message: describe(&e, &self.url),
            retry_after: None,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = read_body(response, &self.url).await?;
        if !status.is_success() {
            let code = status.as_u16();
            return Err(Attempt {
                retryable: matches!(code, 408 | 425 | 429) || status.is_server_error(),
                message: format!("{status} from {}: {}", self.url, excerpt(&text)),
                retry_after: retry_after.map(|d| d.min(MAX_BACKOFF * 4)),
            });
        }
        serde_json::from_str(&text).map_err(|e| Attempt {
            retryable: false,
            message: format!(
                "{} answered with something that is not a Chat Completions reply ({e}): {}",
                self.url,
                excerpt(&text)
            ),
            retry_after: None,
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
                    return Err(Attempt {
                        retryable: false,
                        message: format!(
                            "{url} sent a reply larger than {} MiB",
                            MAX_REPLY_BYTES >> 20
                        ),
                        retry_after: None,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(String::from_utf8_lossy(&body).into_owned()),
            Err(e) => {
                return Err(Attempt {
                    retryable: true,
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
