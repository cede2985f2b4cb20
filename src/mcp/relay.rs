//! What the servers in a sandbox send towards the client, relayed through the gateway:
//! progress, log messages, list and resource changes (notifications), and the requests a
//! server makes of its client (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`). The [`Hub`] knows the clients connected to the gateway (one on stdio,
//! any number over HTTP); each server's connection has a [`Relay`] that hands what the
//! server sends to the hub.
//!
//! Routing:
//!
//! - progress goes to the client whose request carried the token (tokens are renamed on
//!   the way in, so two clients' tokens never meet at a server);
//! - a server's request goes to the client whose request that server is working on
//!   (the latest, when several are), else to the client that connected last. A client of
//!   the 2025-11-25 era is sent the request; a 2026-07-28 client, which takes no requests,
//!   gets it as an input request of an `InputRequiredResult` answering its tool call (see
//!   [`super::gateway`]), and the server its answer when the client calls again;
//! - `notifications/resources/updated` goes to the clients subscribed to that URI;
//! - log messages and list changes go to every client.
//!
//! Sampling, roots and logging are deprecated by the 2026-07-28 revision but live in
//! 2025-11-25, which most servers speak: outrig relays them (hence the `deprecated`
//! allowance).
#![allow(deprecated)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ElicitationCapability, ErrorCode, Implementation,
    ListRootsResult, LoggingMessageNotificationParam, NumberOrString, ProgressNotificationParam,
    ProgressToken, ResourceUpdatedNotificationParam, RootsCapabilities, SamplingCapability,
    ServerJsonRpcMessage, ServerNotification,
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer};
use tokio::sync::{mpsc, oneshot};

/// A list a server said changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

/// A change a server announced, for the gateway to act on.
#[derive(Debug, Clone)]
pub struct Changed {
    /// `<image>.<server>`.
    pub server: String,
    pub list: ListKind,
}

/// A server's request for a client that answers in rounds (2026-07-28): the request as
/// it goes into `inputRequests`, and where the client's response goes.
pub struct Ask {
    /// `{"method": ..., "params": ...}`.
    pub request: serde_json::Value,
    pub reply: oneshot::Sender<Result<serde_json::Value, ErrorData>>,
}

/// How a client's call takes a server's requests in rounds.
#[derive(Clone)]
pub struct Rounds {
    pub asks: mpsc::UnboundedSender<Ask>,
    /// What the client said it can do, in the call's `_meta`.
    pub capabilities: ClientCapabilities,
    /// The progress token the gateway hands the server for the call (chosen by the
    /// caller, which points it at each retry's token).
    pub progress: Option<NumberOrString>,
}

/// Writes a message straight to a client (its stdout), in order with everything else
/// written there.
pub type Sink = Arc<
    dyn Fn(ServerJsonRpcMessage) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// A client connected to the gateway.
struct Client {
    id: u64,
    /// Its rmcp session, once it made a request; for the requests sent to it.
    peer: Option<Peer<RoleServer>>,
    /// Where notifications to it are written directly (stdio), else through `peer`.
    out: Option<Sink>,
    /// URIs it subscribed to.
    subscriptions: BTreeSet<String>,
}

/// A progress token handed to a server, and whose it is.
struct Progress {
    client: u64,
    token: ProgressToken,
}

/// A client's request a server is working on.
struct Work {
    client: u64,
    rounds: Option<Rounds>,
}

/// How long a progress token is remembered after its request was answered.
const PROGRESS_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The clients of one gateway, and what is routed to them.
pub struct Hub {
    me: std::sync::Weak<Hub>,
    clients: Mutex<Vec<Client>>,
    next: AtomicU64,
    progress: Mutex<HashMap<NumberOrString, Progress>>,
    /// Per server, the requests in flight there, latest last.
    working: Mutex<HashMap<String, Vec<(u64, Work)>>>,
    changes: mpsc::UnboundedSender<Changed>,
    changed: Mutex<Option<mpsc::UnboundedReceiver<Changed>>>,
}

/// Keeps a client's request registered with its server until it is answered.
pub struct Working<'a> {
    hub: &'a Hub,
    server: String,
    entry: u64,
    token: Option<NumberOrString>,
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        if let Some(list) = self
            .hub
            .working
            .lock()
            .expect("not poisoned")
            .get_mut(&self.server)
        {
            list.retain(|(entry, _)| *entry != self.entry);
        }
        // A server's last progress may still be on its way through rmcp when the answer
        // is out: the token is forgotten a little later.
        if let Some(token) = self.token.take() {
            match (tokio::runtime::Handle::try_current(), self.hub.me.upgrade()) {
                (Ok(runtime), Some(hub)) => {
                    runtime.spawn(async move {
                        tokio::time::sleep(PROGRESS_GRACE).await;
                        hub.progress.lock().expect("not poisoned").remove(&token);
                    });
                }
                _ => {
                    self.hub
                        .progress
                        .lock()
                        .expect("not poisoned")
                        .remove(&token);
                }
            }
        }
    }
}

/// Where a server's request goes.
enum Target {
    Rounds(Rounds),
    Peer(Peer<RoleServer>),
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let (changes, changed) = mpsc::unbounded_channel();
        Arc::new_cyclic(|me| Hub {
            me: me.clone(),
            clients: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
            progress: Mutex::new(HashMap::new()),
            working: Mutex::new(HashMap::new()),
            changes,
            changed: Mutex::new(Some(changed)),
        })
    }

    /// The list changes servers announce; taken once, by the gateway.
    pub fn take_changes(&self) -> Option<mpsc::UnboundedReceiver<Changed>> {
        self.changed.lock().expect("not poisoned").take()
    }

    /// A client connected; its id. Notifications to it go to `out` when given.
    pub fn connect(&self, out: Option<Sink>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.clients.lock().expect("not poisoned").push(Client {
            id,
            peer: None,
            out,
            subscriptions: BTreeSet::new(),
        });
        id
    }

    /// The client's rmcp session, seen on its first request.
    pub fn attach_peer(&self, id: u64, peer: &Peer<RoleServer>) {
        if let Some(client) = self
            .clients
            .lock()
            .expect("not poisoned")
            .iter_mut()
            .find(|c| c.id == id)
            && client.peer.is_none()
        {
            client.peer = Some(peer.clone());
        }
    }

    /// A client left.
    pub fn disconnect(&self, id: u64) {
        self.clients
            .lock()
            .expect("not poisoned")
            .retain(|c| c.id != id);
    }

    /// Register a request of `client` to `server` while it runs. A progress token in it
    /// is replaced by one of the gateway's own, which is returned to send instead.
    /// `rounds`, for a client of the 2026-07-28 era, takes the server's requests.
    pub fn working(
        &self,
        client: u64,
        server: &str,
        token: Option<ProgressToken>,
        rounds: Option<Rounds>,
    ) -> (Working<'_>, Option<ProgressToken>) {
        let entry = self.next.fetch_add(1, Ordering::Relaxed);
        let chosen = rounds.as_ref().and_then(|r| r.progress.clone());
        self.working
            .lock()
            .expect("not poisoned")
            .entry(server.to_string())
            .or_default()
            .push((entry, Work { client, rounds }));
        let ours = token.map(|token| {
            let ours = chosen.unwrap_or_else(|| self.new_token());
            self.progress
                .lock()
                .expect("not poisoned")
                .insert(ours.clone(), Progress { client, token });
            ours
        });
        (
            Working {
                hub: self,
                server: server.to_string(),
                entry,
                token: ours.clone(),
            },
            ours.map(ProgressToken),
        )
    }

    /// A progress token of the gateway's own.
    pub fn new_token(&self) -> NumberOrString {
        NumberOrString::String(
            format!("outrig-{}", self.next.fetch_add(1, Ordering::Relaxed)).into(),
        )
    }

    /// Send the progress of `ours` to the client's `token` from now on (a retried call
    /// of a 2026-07-28 client carries a token of its own).
    pub fn retarget_progress(&self, ours: &NumberOrString, token: ProgressToken) {
        if let Some(progress) = self.progress.lock().expect("not poisoned").get_mut(ours) {
            progress.token = token;
        }
    }

    pub fn subscribe(&self, client: u64, uri: &str) {
        if let Some(c) = self
            .clients
            .lock()
            .expect("not poisoned")
            .iter_mut()
            .find(|c| c.id == client)
        {
            c.subscriptions.insert(uri.to_string());
        }
    }

    pub fn unsubscribe(&self, client: u64, uri: &str) {
        if let Some(c) = self
            .clients
            .lock()
            .expect("not poisoned")
            .iter_mut()
            .find(|c| c.id == client)
        {
            c.subscriptions.remove(uri);
        }
    }

    /// Whether any client still wants updates of `uri`.
    pub fn subscribed(&self, uri: &str) -> bool {
        self.clients
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|c| c.subscriptions.contains(uri))
    }

    /// Send `notification` to the clients `to` picks.
    pub async fn notify(
        &self,
        to: impl Fn(u64, &BTreeSet<String>) -> bool,
        notification: ServerNotification,
    ) {
        let targets: Vec<(Option<Sink>, Option<Peer<RoleServer>>)> = self
            .clients
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|c| to(c.id, &c.subscriptions))
            .map(|c| (c.out.clone(), c.peer.clone()))
            .collect();
        for (out, peer) in targets {
            match (out, peer) {
                (Some(out), _) => {
                    out(ServerJsonRpcMessage::notification(notification.clone())).await;
                }
                (None, Some(peer)) => {
                    let _ = peer.send_notification(notification.clone()).await;
                }
                (None, None) => {}
            }
        }
    }

    /// Every connected client.
    pub async fn notify_all(&self, notification: ServerNotification) {
        self.notify(|_, _| true, notification).await;
    }

    /// Where a request from `server` goes.
    fn target(&self, server: &str) -> Option<Target> {
        let working = self.working.lock().expect("not poisoned");
        let latest = working.get(server).and_then(|list| list.last());
        if let Some((_, work)) = latest
            && let Some(rounds) = &work.rounds
        {
            return Some(Target::Rounds(rounds.clone()));
        }
        let client = latest.map(|(_, work)| work.client);
        drop(working);
        let clients = self.clients.lock().expect("not poisoned");
        client
            .and_then(|id| clients.iter().find(|c| c.id == id))
            .filter(|c| c.peer.is_some())
            .or_else(|| clients.iter().rev().find(|c| c.peer.is_some()))
            .and_then(|c| c.peer.clone())
            .map(Target::Peer)
    }

    pub async fn progress(&self, mut params: ProgressNotificationParam) {
        let (client, token) = {
            let progress = self.progress.lock().expect("not poisoned");
            match progress.get(&params.progress_token.0) {
                Some(p) => (p.client, p.token.clone()),
                None => return,
            }
        };
        params.progress_token = token;
        let notification =
            ServerNotification::ProgressNotification(rmcp::model::Notification::new(params));
        self.notify(|id, _| id == client, notification).await;
    }
}

/// What outrig tells each server its client can do: everything it relays. A request the
/// connected client cannot answer is refused by the gateway (see [`Relay`]).
pub fn client_config() -> ClientConfig {
    let mut capabilities = ClientCapabilities::default();
    capabilities.sampling = Some(SamplingCapability::default());
    capabilities.elicitation = Some(
        ElicitationCapability::new()
            .with_form(Default::default())
            .with_url(Default::default()),
    );
    let mut roots = RootsCapabilities::default();
    roots.list_changed = Some(true);
    capabilities.roots = Some(roots);
    ClientConfig::new(
        capabilities,
        Implementation::new("outrig", env!("CARGO_PKG_VERSION")),
    )
}

/// The handler of one server's connection: what the server sends towards its client.
#[derive(Clone)]
pub struct Relay {
    /// `<image>.<server>`.
    pub server: String,
    pub hub: Arc<Hub>,
}

fn no_client(method: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("{method} is not available: no MCP client that offers it is connected to outrig"),
        None,
    )
}

fn not_offered(method: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("the client connected to outrig does not offer {method}"),
        None,
    )
}

fn relay_error(method: &str, error: rmcp::ServiceError) -> ErrorData {
    match error {
        rmcp::ServiceError::McpError(error) => error,
        other => ErrorData::internal_error(
            format!("the client connected to outrig did not answer {method}: {other}"),
            None,
        ),
    }
}

impl Relay {
    /// A relay to no client: a session without a gateway (the agent).
    pub fn alone() -> Relay {
        Relay {
            server: String::new(),
            hub: Hub::new(),
        }
    }

    fn changed(&self, list: ListKind) {
        let _ = self.hub.changes.send(Changed {
            server: self.server.clone(),
            list,
        });
    }

    /// Ask the client `method` with `params`: in a round of its call (2026-07-28), or as
    /// a request through `legacy` (2025-11-25), when it declared `offers`.
    async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: serde_json::Value,
        offers: impl Fn(&ClientCapabilities) -> bool,
        legacy: impl AsyncFnOnce(Peer<RoleServer>) -> Result<T, rmcp::ServiceError>,
    ) -> Result<T, ErrorData> {
        match self
            .hub
            .target(&self.server)
            .ok_or_else(|| no_client(method))?
        {
            Target::Rounds(rounds) => {
                if !offers(&rounds.capabilities) {
                    return Err(not_offered(method));
                }
                let (reply, answer) = oneshot::channel();
                let mut request = serde_json::json!({ "method": method });
                if !params.is_null() {
                    request["params"] = params;
                }
                rounds
                    .asks
                    .send(Ask { request, reply })
                    .map_err(|_| no_client(method))?;
                let value = answer.await.map_err(|_| {
                    ErrorData::internal_error(
                        format!("the client left before it answered {method}"),
                        None,
                    )
                })??;
                serde_json::from_value(value).map_err(|e| {
                    ErrorData::invalid_params(
                        format!("the client's answer to {method} is malformed: {e}"),
                        None,
                    )
                })
            }
            Target::Peer(peer) => {
                let declared = peer
                    .peer_info()
                    .map(|info| offers(&info.capabilities))
                    .unwrap_or(false);
                if !declared {
                    return Err(not_offered(method));
                }
                legacy(peer).await.map_err(|e| relay_error(method, e))
            }
        }
    }
}

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        client_config()
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let json = serde_json::to_value(&params).unwrap_or_default();
        self.ask(
            "sampling/createMessage",
            json,
            |c| c.sampling.is_some(),
            async |peer| peer.create_message(params).await,
        )
        .await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let json = serde_json::to_value(&params).unwrap_or_default();
        self.ask(
            "elicitation/create",
            json,
            |c| c.elicitation.is_some(),
            async |peer| peer.create_elicitation(params).await,
        )
        .await
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        self.ask(
            "roots/list",
            serde_json::Value::Null,
            |c| c.roots.is_some(),
            async |peer| peer.list_roots().await,
        )
        .await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.hub.progress(params).await;
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let notification =
            ServerNotification::LoggingMessageNotification(rmcp::model::Notification::new(params));
        self.hub.notify_all(notification).await;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let uri = params.uri.clone();
        let notification =
            ServerNotification::ResourceUpdatedNotification(rmcp::model::Notification::new(params));
        self.hub
            .notify(
                |_, subscribed| subscribed.contains(uri.as_str()),
                notification,
            )
            .await;
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed(ListKind::Resources);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed(ListKind::Tools);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed(ListKind::Prompts);
    }
}
