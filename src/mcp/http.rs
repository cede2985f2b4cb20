//! `outrig mcp --listen`: the gateway served over MCP's Streamable HTTP (rmcp's server
//! transport), to any number of clients, each in a session of its own.
//!
//! Safe by default:
//!
//! - it binds a loopback address unless told otherwise with `--allow-remote`;
//! - every request must carry `Authorization: Bearer <token>` (compared in constant
//!   time), else 401;
//! - `Host` must name the bound address (or `localhost`, or a `--allow-host`), and an
//!   `Origin`, when a browser sends one, must be this server's own or a `--allow-origin`:
//!   both against DNS rebinding, else 403.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::gateway::Gateway;
use super::surface::Surface;

/// The path the gateway answers on.
pub const PATH: &str = "/mcp";

/// Who may talk to the gateway.
#[derive(Debug, Clone)]
pub struct Access {
    /// The bearer token every request must carry.
    pub token: String,
    /// Host names (besides the bound address and loopback names) a request may name.
    pub hosts: Vec<String>,
    /// Origins (besides this server's own) a browser request may come from.
    pub origins: Vec<String>,
}

/// Why the gateway could not listen.
#[derive(Debug)]
pub enum ListenError {
    /// A non-loopback address without `--allow-remote`.
    NotLoopback(SocketAddr),
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::NotLoopback(address) => write!(
                f,
                "{address} is not a loopback address: the gateway would be reachable from other machines"
            ),
            ListenError::Bind(address, error) => write!(f, "cannot listen on {address}: {error}"),
        }
    }
}

/// A bound listener, before it serves.
pub struct Listener {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
}

impl Listener {
    /// Bind `address`; a non-loopback one only when `allow_remote`.
    pub async fn bind(address: SocketAddr, allow_remote: bool) -> Result<Listener, ListenError> {
        if !address.ip().is_loopback() && !allow_remote {
            return Err(ListenError::NotLoopback(address));
        }
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| ListenError::Bind(address, e))?;
        let address = listener.local_addr().unwrap_or(address);
        Ok(Listener { listener, address })
    }

    /// The address bound (with the port chosen when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        url(self.address)
    }

    /// Serve `surface` until the future is dropped.
    pub async fn serve(self, surface: Arc<Surface>, access: Access) {
        let Listener { listener, address } = self;
        let cancel = tokio_util::sync::CancellationToken::new();
        let _stop = cancel.clone().drop_guard();
        let rules = Arc::new(Rules::new(address, access));
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(rules.hosts.clone())
            .disable_allowed_origins()
            .with_cancellation_token(cancel.child_token());
        let sessions = Arc::new(LocalSessionManager::default());
        let factory_surface = surface.clone();
        let service = StreamableHttpService::new(
            move || Ok(Gateway::new(factory_surface.clone())),
            sessions,
            config,
        );
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            // Replies are written in pieces (headers, SSE events): without this, Nagle's
            // algorithm meets the client's delayed ACK and each costs 40 ms.
            let _ = stream.set_nodelay(true);
            while connections.try_join_next().is_some() {}
            let service = service.clone();
            let rules = rules.clone();
            let surface = surface.clone();
            connections.spawn(async move {
                let handler = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let mut service = service.clone();
                        let rules = rules.clone();
                        let surface = surface.clone();
                        async move {
                            if let Err(refused) = rules.check(&request) {
                                return Ok::<_, std::convert::Infallible>(refused.into_response());
                            }
                            let deleting = request.method() == http::Method::DELETE;
                            let (parts, body) = request.into_parts();
                            let body = match read_body(body).await {
                                Ok(body) => body,
                                Err(refused) => return Ok(refused.into_response()),
                            };
                            let listing = lists_tools(&body);
                            let request = http::Request::from_parts(parts, Full::new(body));
                            let mut response =
                                tower_service::Service::call(&mut service, request).await?;
                            if listing {
                                response = as_written(response, &surface).await;
                            }
                            // A session ended by DELETE is 200 to clients (rmcp says 202,
                            // which the Python SDK reports as a failure).
                            if deleting && response.status() == http::StatusCode::ACCEPTED {
                                *response.status_mut() = http::StatusCode::OK;
                            }
                            Ok(response)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, handler)
                    .await;
            });
        }
    }
}

/// `http://ADDRESS/mcp`.
pub fn url(address: SocketAddr) -> String {
    format!("http://{address}{PATH}")
}

/// A new bearer token: 32 random bytes, hex.
pub fn new_token() -> String {
    use rand::RngExt;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Response =
    http::Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>;

/// The checks made before a request reaches rmcp.
struct Rules {
    token: String,
    /// `Host` values accepted, with and without the port.
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Rules {
    fn new(address: SocketAddr, access: Access) -> Rules {
        let port = address.port();
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
        names.push(match address {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        });
        names.extend(access.hosts.iter().cloned());
        names.sort();
        names.dedup();
        let mut hosts: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
        hosts.extend(names.iter().cloned());
        let mut origins: Vec<String> = names.iter().map(|n| format!("http://{n}:{port}")).collect();
        origins.extend(
            access
                .origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_string()),
        );
        Rules {
            token: access.token,
            hosts,
            origins,
        }
    }

    fn check<B>(&self, request: &http::Request<B>) -> Result<(), Refusal> {
        let headers = request.headers();
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !self.hosts.contains(&host) {
            return Err(Refusal::forbidden(format!(
                "Host `{host}` is not this gateway's (DNS rebinding protection); start outrig mcp with --allow-host to accept it"
            )));
        }
        if let Some(origin) = headers.get(http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
            if !self.origins.contains(&origin) {
                return Err(Refusal::forbidden(format!(
                    "Origin `{origin}` may not use this gateway; start outrig mcp with --allow-origin to accept it"
                )));
            }
        }
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same(presented.trim().as_bytes(), self.token.as_bytes()) {
            return Err(Refusal {
                status: http::StatusCode::UNAUTHORIZED,
                message: "a bearer token is required: send `Authorization: Bearer <token>` with the token outrig mcp printed (or the one in --token-env)".into(),
            });
        }
        Ok(())
    }
}

/// A request refused before rmcp sees it.
#[derive(Debug)]
struct Refusal {
    status: http::StatusCode,
    message: String,
}

impl Refusal {
    fn forbidden(message: String) -> Refusal {
        Refusal {
            status: http::StatusCode::FORBIDDEN,
            message,
        }
    }

    fn into_response(self) -> Response {
        let mut response = refuse(self.status, &self.message);
        if self.status == http::StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"outrig\""),
            );
        }
        response
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        difference |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

fn refuse(status: http::StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32600, "message": message },
    });
    let mut response = http::Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The longest request body accepted (rmcp's own limit).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Read a request's body whole, within [`MAX_BODY`]; 413 beyond it.
async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, Refusal> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(Refusal {
            status: http::StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the request body could not be read within {MAX_BODY} bytes: {error}"),
        }),
    }
}

/// Whether a request body is a `tools/list` request.
fn lists_tools(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        method: Option<&'a str>,
    }
    serde_json::from_slice::<Request>(body).is_ok_and(|r| r.method == Some("tools/list"))
}

/// A `tools/list` response with each definition as its server wrote it (rmcp's model of
/// a tool leaves out fields such as `execution`), whether it came as JSON or as an event
/// stream.
async fn as_written(response: Response, surface: &Surface) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let bytes = collected.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let rewrite = |json: &str| -> Option<String> {
        let mut message: serde_json::Value = serde_json::from_str(json).ok()?;
        let result = message.get_mut("result")?;
        let typed: rmcp::model::ListToolsResult = serde_json::from_value(result.clone()).ok()?;
        *result = surface.tools_as_written(&typed);
        serde_json::to_string(&message).ok()
    };
    let rewritten = if text.trim_start().starts_with('{') {
        rewrite(&text).unwrap_or_else(|| text.to_string())
    } else {
        text.lines()
            .map(|line| match line.strip_prefix("data: ").and_then(rewrite) {
                Some(json) => format!("data: {json}"),
                None => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            + if text.ends_with('\n') { "\n" } else { "" }
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, Full::new(Bytes::from(rewritten)).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(
            "127.0.0.1:4100".parse().unwrap(),
            Access {
                token: "secret-token".into(),
                hosts: Vec::new(),
                origins: vec!["https://app.example".into()],
            },
        )
    }

    fn request(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut request = http::Request::new(());
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        request
    }

    #[test]
    fn the_token_host_and_origin_are_checked() {
        let rules = rules();
        let good = [
            ("host", "127.0.0.1:4100"),
            ("authorization", "Bearer secret-token"),
        ];
        assert!(rules.check(&request(&good)).is_ok());
        let status = |headers: &[(&str, &str)]| rules.check(&request(headers)).unwrap_err().status;
        assert_eq!(status(&[("host", "127.0.0.1:4100")]), 401);
        assert_eq!(
            status(&[
                ("host", "127.0.0.1:4100"),
                ("authorization", "Bearer secret-tokeN")
            ]),
            401
        );
        assert_eq!(
            status(&[
                ("host", "evil.example:4100"),
                ("authorization", "Bearer secret-token")
            ]),
            403
        );
        let with_origin = |origin| {
            rules
                .check(&request(&[
                    ("host", "localhost:4100"),
                    ("authorization", "Bearer secret-token"),
                    ("origin", origin),
                ]))
                .map_err(|r| r.status)
        };
        assert_eq!(
            with_origin("http://evil.example"),
            Err(http::StatusCode::FORBIDDEN)
        );
        assert_eq!(with_origin("http://localhost:4100"), Ok(()));
        assert_eq!(with_origin("https://app.example"), Ok(()));
    }

    #[test]
    fn tokens_are_long_and_fresh() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(a.as_bytes(), a.clone().as_bytes()));
        assert!(!same(a.as_bytes(), &a.as_bytes()[..63]));
    }

    #[tokio::test]
    async fn a_non_loopback_address_needs_allow_remote() {
        let error = Listener::bind("0.0.0.0:0".parse().unwrap(), false)
            .await
            .err()
            .unwrap();
        assert!(matches!(error, ListenError::NotLoopback(_)));
        assert!(
            Listener::bind("127.0.0.1:0".parse().unwrap(), false)
                .await
                .is_ok()
        );
    }
}
