//! The gateway before its sandbox is ready. A stdio client is answered at once: its
//! handshake with what the servers offer as `outrig.lock` pinned it ([`Preview`]), its
//! `tools/list` with the pinned tools when every served server is pinned. Everything
//! else waits until the servers answer ([`Startup::publish`]), or is answered with
//! outrig's own error when they cannot be started ([`Startup::fail`]), so the client shows
//! why instead of "failed to connect".
//!
//! This module owns the stage a gateway is in; it starts nothing itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rmcp::ErrorData;
use rmcp::model::{ErrorCode, ServerCapabilities, Tool};
use tokio::sync::watch;

use super::relay::Hub;
use super::surface::{Surface, declared};
use super::toolbox::RawTools;
use crate::error::Error;
use crate::lock::{Lock, Offer};

/// Where a gateway stands.
#[derive(Clone)]
enum Stage {
    /// The sandbox and its servers are starting.
    Starting,
    /// Serving.
    Ready(Arc<Surface>),
    /// They could not be started: every request is answered with this.
    Failed(Arc<ErrorData>),
}

/// What a client can be told before any server runs.
pub struct Preview {
    /// What the gateway declares in its handshake.
    pub declared: ServerCapabilities,
    /// The tools as they will be published, from `outrig.lock`, when every served server
    /// is pinned there.
    pub tools: Option<(Vec<Tool>, RawTools)>,
}

impl Preview {
    /// The preview of serving `servers` (the config's names, in plan order) of `image`
    /// under the allow-lists `allow`, from `lock`: what they offer as pinned (a server
    /// pinned before outrig recorded it, or not at all, may offer anything, so everything
    /// is declared for it), and their pinned tools when every one is pinned.
    pub fn from_lock(
        lock: Option<&Lock>,
        image: &str,
        servers: &[&str],
        allow: &[Vec<String>],
        unprefixed: Option<&str>,
    ) -> Preview {
        let pins: Vec<Option<&crate::lock::ServerPin>> = servers
            .iter()
            .map(|server| lock.and_then(|l| l.servers.get(&format!("{image}.{server}"))))
            .collect();
        let mut offered: Vec<Offer> = Vec::new();
        for pin in &pins {
            match pin.and_then(|p| p.offers.as_ref()) {
                Some(offers) => offered.extend(offers),
                None => offered.extend(Offer::ALL),
            }
        }
        let tools = pins
            .iter()
            .map(|pin| {
                pin.map(|pin| {
                    pin.tools
                        .values()
                        .filter_map(|definition| serde_json::from_str(definition).ok())
                        .collect::<Vec<serde_json::Map<String, serde_json::Value>>>()
                })
            })
            .collect::<Option<Vec<_>>>()
            .map(|listed| super::toolbox::published(servers, listed, allow, unprefixed));
        Preview {
            declared: declared(&offered),
            tools,
        }
    }

    /// What a gateway that cannot start declares: tools, which it answers with its error.
    pub fn failed() -> Preview {
        Preview {
            declared: declared(&[]),
            tools: None,
        }
    }
}

/// A gateway's stage, shared by every client's handler.
pub struct Startup {
    declared: ServerCapabilities,
    early: Option<(Vec<Tool>, RawTools)>,
    /// Whether a client was given the early tool list.
    early_served: AtomicBool,
    /// Whether a client has sent anything.
    heard: AtomicBool,
    stage: watch::Sender<Stage>,
    hub: Arc<Hub>,
}

impl Startup {
    /// Until the client closes the session (`client_gone`), or SIGINT, SIGTERM or SIGHUP
    /// comes, or a client that has said nothing stays silent for `silence`: how long a
    /// gateway that could not start keeps answering with its error.
    pub async fn until_the_client_leaves(
        &self,
        client_gone: &tokio_util::sync::CancellationToken,
        silence: std::time::Duration,
    ) {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).ok();
        let (mut interrupt, mut terminate, mut hang_up) = (
            listen(SignalKind::interrupt()),
            listen(SignalKind::terminate()),
            listen(SignalKind::hangup()),
        );
        let received = async |listener: &mut Option<tokio::signal::unix::Signal>| match listener {
            Some(listener) => {
                listener.recv().await;
            }
            None => std::future::pending().await,
        };
        let silent = async {
            tokio::time::sleep(silence).await;
            if self.heard() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = client_gone.cancelled() => {}
            () = received(&mut interrupt) => {}
            () = received(&mut terminate) => {}
            () = received(&mut hang_up) => {}
            () = silent => {}
        }
    }

    /// A gateway whose servers are starting, telling clients `preview` meanwhile.
    pub fn starting(preview: Preview, hub: Arc<Hub>) -> Arc<Startup> {
        Arc::new(Startup {
            declared: preview.declared,
            early: preview.tools,
            early_served: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            stage: watch::Sender::new(Stage::Starting),
            hub,
        })
    }

    /// A gateway serving `surface` from the start (over HTTP, where the listener opens
    /// once the servers answered).
    pub fn ready(surface: Arc<Surface>) -> Arc<Startup> {
        Arc::new(Startup {
            declared: surface.capabilities().clone(),
            early: None,
            early_served: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            hub: surface.hub().clone(),
            stage: watch::Sender::new(Stage::Ready(surface)),
        })
    }

    /// The servers answered: serve `surface`. A client that was given the tools pinned in
    /// `outrig.lock` is told the list changed when what is served differs from them.
    pub async fn publish(&self, surface: Arc<Surface>) {
        // Compared as written: a pin from before outrig pinned definitions as written
        // lacks what rmcp does not model, and the client is told to list again.
        let differs = self.early_served.load(Ordering::SeqCst)
            && self.early.as_ref().is_some_and(|(_, early)| {
                let served = surface.toolbox().tools();
                served.len() != early.len()
                    || served.iter().any(|tool| {
                        let name = tool.name.as_ref();
                        surface.toolbox().raw_tool(name).as_ref() != early.get(name)
                    })
            });
        self.stage.send_replace(Stage::Ready(surface));
        if differs {
            use rmcp::model::{NotificationNoParam, ServerNotification};
            self.hub
                .notify_all(ServerNotification::ToolListChangedNotification(
                    NotificationNoParam::default(),
                ))
                .await;
        }
    }

    /// The servers could not be started: answer every request with `error`.
    pub fn fail(&self, error: &Error) {
        self.stage
            .send_replace(Stage::Failed(Arc::new(client_error(error))));
    }

    /// What the handshake declares.
    pub fn declared(&self) -> &ServerCapabilities {
        &self.declared
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// A client sent something.
    pub fn hear(&self) {
        self.heard.store(true, Ordering::SeqCst);
    }

    /// Whether a client has sent anything yet.
    pub fn heard(&self) -> bool {
        self.heard.load(Ordering::SeqCst)
    }

    /// The surface, once ready.
    pub fn current(&self) -> Option<Arc<Surface>> {
        match &*self.stage.borrow() {
            Stage::Ready(surface) => Some(surface.clone()),
            _ => None,
        }
    }

    /// The surface once the servers answered, or the error they could not be started
    /// with.
    pub async fn surface(&self) -> Result<Arc<Surface>, ErrorData> {
        let mut stage = self.stage.subscribe();
        let settled = stage
            .wait_for(|stage| !matches!(stage, Stage::Starting))
            .await
            .map(|stage| stage.clone());
        match settled {
            Ok(Stage::Ready(surface)) => Ok(surface),
            Ok(Stage::Failed(error)) => Err((*error).clone()),
            // The sender lives as long as `self`.
            _ => Err(ErrorData::internal_error(
                "outrig's gateway is shutting down",
                None,
            )),
        }
    }

    /// The published tools: the servers' once ready, the pinned ones while they start (when
    /// every served server is pinned), else once ready.
    pub async fn tools(&self) -> Result<Vec<Tool>, ErrorData> {
        if let Some(surface) = self.current() {
            return Ok(surface.toolbox().tools());
        }
        if let (Some((tools, _)), Stage::Starting) = (&self.early, &*self.stage.borrow()) {
            self.early_served.store(true, Ordering::SeqCst);
            return Ok(tools.clone());
        }
        Ok(self.surface().await?.toolbox().tools())
    }

    /// A published tool's definition as its server wrote it.
    pub fn raw_tool(&self, name: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.current()
            .and_then(|surface| surface.toolbox().raw_tool(name))
            .or_else(|| self.early.as_ref()?.1.get(name).cloned())
    }

    /// A published tool, as rmcp models it.
    pub fn tool(&self, name: &str) -> Option<Tool> {
        match self.current() {
            Some(surface) => surface
                .toolbox()
                .tools()
                .into_iter()
                .find(|t| t.name == name),
            None => self
                .early
                .as_ref()?
                .0
                .iter()
                .find(|t| t.name == name)
                .cloned(),
        }
    }
}

/// outrig's error as a client shows it: the message, its causes and the hint in one line
/// (clients show the message), and each part in `data.outrig`.
fn client_error(error: &Error) -> ErrorData {
    let mut message = format!(
        "outrig could not start the sandbox's MCP servers: {}",
        error.message
    );
    let diagnostics: Vec<String> = error.details.iter().filter_map(|d| headline(d)).collect();
    for diagnostic in &diagnostics {
        message.push_str(&format!("; {diagnostic}"));
    }
    for cause in &error.causes {
        message.push_str(&format!("; caused by: {}", one_line(cause)));
    }
    if let Some(hint) = &error.hint {
        message.push_str(&format!("; hint: {hint}"));
    }
    ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        message,
        Some(serde_json::json!({
            "outrig": {
                "error": error.message,
                "diagnostics": diagnostics,
                "causes": error.causes,
                "hint": error.hint,
            }
        })),
    )
}

/// A rendered config diagnostic in one line: its message and where
/// (`unknown key `bad` at outrig.toml:6:1`).
fn headline(rendered: &str) -> Option<String> {
    let plain = strip_styles(rendered);
    let mut lines = plain.lines().map(str::trim);
    let first = lines.next()?;
    let message = first.split_once("]: ").map_or(first, |(_, m)| m);
    let message = message.strip_prefix("error: ").unwrap_or(message);
    match lines.find_map(|l| l.strip_prefix("--> ")) {
        Some(place) => Some(format!("{message} at {place}")),
        None => Some(message.to_string()),
    }
}

/// `text` without terminal colour sequences.
fn strip_styles(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A cause on one line: a command's stderr tail is several.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" | ")
}

/// Which of `tools` differ by name from `early` (for tests and messages).
#[cfg(test)]
fn names(tools: &[Tool]) -> Vec<String> {
    tools.iter().map(|t| t.name.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Lock, ServerPin, canonical};

    fn lock() -> Lock {
        let mut lock = Lock::default();
        let mut tools = std::collections::BTreeMap::new();
        for name in ["get_current_time", "convert_time"] {
            tools.insert(
                name.to_string(),
                canonical(&serde_json::json!({
                    "name": name,
                    "description": format!("{name} (pinned)"),
                    "inputSchema": {"type": "object"},
                    "execution": {"taskSupport": "forbidden"},
                })),
            );
        }
        lock.servers.insert(
            "tools.time".into(),
            ServerPin {
                protocol_version: "2025-11-25".into(),
                offers: Some(vec![Offer::Logging]),
                tools,
                ..Default::default()
            },
        );
        lock
    }

    #[test]
    fn pinned_servers_give_their_tools_and_offers_before_they_run() {
        let lock = lock();
        let allow = vec![vec!["time__get_*".to_string()]];
        let preview = Preview::from_lock(Some(&lock), "tools", &["time"], &allow, None);
        let (tools, raw) = preview.tools.expect("every server is pinned");
        assert_eq!(names(&tools), ["time__get_current_time"]);
        // As written: fields rmcp does not model stay.
        assert_eq!(
            raw["time__get_current_time"]["execution"]["taskSupport"],
            "forbidden"
        );
        assert!(preview.declared.logging.is_some());
        assert!(preview.declared.prompts.is_none());
        assert_eq!(
            preview.declared.tools.as_ref().unwrap().list_changed,
            Some(true)
        );
    }

    #[test]
    fn an_unpinned_server_lists_nothing_early_and_may_offer_anything() {
        let lock = lock();
        let preview = Preview::from_lock(Some(&lock), "tools", &["time", "fs"], &[], None);
        assert!(preview.tools.is_none(), "`fs` is not pinned");
        let declared = preview.declared;
        assert!(declared.prompts.is_some() && declared.completions.is_some());
        assert_eq!(declared.resources.unwrap().subscribe, Some(true));
        let preview = Preview::from_lock(None, "tools", &["time"], &[], None);
        assert!(preview.tools.is_none());
    }

    #[test]
    fn config_diagnostics_are_told_in_a_line_each() {
        let rendered = "\u{1b}[1merror[unknown-key]\u{1b}[0m: unknown key `bad` in `images.tools`\n --> outrig.toml:6:1\n  |\n6 | bad = 1\n";
        assert_eq!(
            headline(rendered).unwrap(),
            "unknown key `bad` in `images.tools` at outrig.toml:6:1"
        );
    }

    #[tokio::test]
    async fn a_failed_start_answers_with_outrigs_error_and_hint() {
        let startup = Startup::starting(Preview::failed(), Hub::new());
        let waiting = {
            let startup = startup.clone();
            tokio::spawn(async move { startup.tools().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "tools/list waits while starting");
        let error = Error::new("image `tools` must be built before its tools can be served")
            .cause("`podman build` exited with status 1\n--- stderr\nno space left")
            .hint("run `outrig apply` first, or start the gateway with `outrig mcp --build`");
        startup.fail(&error);
        let answered = waiting.await.unwrap().unwrap_err();
        assert_eq!(answered.code, ErrorCode::INTERNAL_ERROR);
        assert_eq!(
            answered.message,
            "outrig could not start the sandbox's MCP servers: image `tools` must be built \
             before its tools can be served; caused by: `podman build` exited with status 1 | \
             --- stderr | no space left; hint: run `outrig apply` first, or start the gateway \
             with `outrig mcp --build`"
        );
        assert_eq!(
            answered.data.unwrap()["outrig"]["hint"],
            "run `outrig apply` first, or start the gateway with `outrig mcp --build`"
        );
    }
}
