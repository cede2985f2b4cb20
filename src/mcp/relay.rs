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
//!   (the latest, when several are), else to the client that connected last;
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
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer};

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

/// A client connected to the gateway.
struct Client {
    id: u64,
    peer: Peer<RoleServer>,
    /// URIs it subscribed to.
    subscriptions: BTreeSet<String>,
}

/// A progress token handed to a server, and whose it is.
struct Progress {
    client: u64,
    token: ProgressToken,
}

/// How long a progress token is remembered after its request was answered.
const PROGRESS_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The clients of one gateway, and what is routed to them.
pub struct Hub {
    me: std::sync::Weak<Hub>,
    clients: Mutex<Vec<Client>>,
    next: AtomicU64,
    progress: Mutex<HashMap<NumberOrString, Progress>>,
    /// Per server, the clients with a request in flight there, latest last.
    working: Mutex<HashMap<String, Vec<u64>>>,
    changes: tokio::sync::mpsc::UnboundedSender<Changed>,
    changed: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Changed>>>,
}

/// Keeps a client's request registered with its server until it is answered.
pub struct Working<'a> {
    hub: &'a Hub,
    server: String,
    client: u64,
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
            && let Some(at) = list.iter().rposition(|c| *c == self.client)
        {
            list.remove(at);
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

impl Hub {
    pub fn new() -> Arc<Hub> {
        let (changes, changed) = tokio::sync::mpsc::unbounded_channel();
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
    pub fn take_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Changed>> {
        self.changed.lock().expect("not poisoned").take()
    }

    /// A client connected; its id.
    pub fn connect(&self, peer: Peer<RoleServer>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.clients.lock().expect("not poisoned").push(Client {
            id,
            peer,
            subscriptions: BTreeSet::new(),
        });
        id
    }

    /// A client left.
    pub fn disconnect(&self, id: u64) {
        self.clients
            .lock()
            .expect("not poisoned")
            .retain(|c| c.id != id);
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.clients.lock().expect("not poisoned").len()
    }

    /// Register a request of `client` to `server` while it runs. A progress token in it
    /// is replaced by one of the gateway's own, which is returned to send instead.
    pub fn working(
        &self,
        client: u64,
        server: &str,
        token: Option<ProgressToken>,
    ) -> (Working<'_>, Option<ProgressToken>) {
        self.working
            .lock()
            .expect("not poisoned")
            .entry(server.to_string())
            .or_default()
            .push(client);
        let ours = token.map(|token| {
            let ours = NumberOrString::String(
                format!("outrig-{}", self.next.fetch_add(1, Ordering::Relaxed)).into(),
            );
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
                client,
                token: ours.clone(),
            },
            ours.map(ProgressToken),
        )
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

    fn peers(&self, filter: impl Fn(&Client) -> bool) -> Vec<Peer<RoleServer>> {
        self.clients
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|c| filter(c))
            .map(|c| c.peer.clone())
            .collect()
    }

    /// Every connected client.
    pub fn all(&self) -> Vec<Peer<RoleServer>> {
        self.peers(|_| true)
    }

    /// The client a request from `server` is for.
    fn asked_by(&self, server: &str) -> Option<Peer<RoleServer>> {
        let working = self
            .working
            .lock()
            .expect("not poisoned")
            .get(server)
            .and_then(|list| list.last().copied());
        let clients = self.clients.lock().expect("not poisoned");
        working
            .and_then(|id| clients.iter().find(|c| c.id == id))
            .or(clients.last())
            .map(|c| c.peer.clone())
    }

    async fn progress(&self, mut params: ProgressNotificationParam) {
        let (client, token) = {
            let progress = self.progress.lock().expect("not poisoned");
            match progress.get(&params.progress_token.0) {
                Some(p) => (p.client, p.token.clone()),
                None => return,
            }
        };
        params.progress_token = token;
        for peer in self.peers(|c| c.id == client) {
            let _ = peer.notify_progress(params.clone()).await;
        }
    }
}

/// What outrig tells each server its client can do: everything it relays. A request the
/// connected client cannot answer is refused by the gateway (see [`Relay`]).
pub fn client_config() -> ClientConfig {
    let mut capabilities = ClientCapabilities::default();
    capabilities.sampling = Some(SamplingCapability::default());
    capabilities.elicitation = Some(ElicitationCapability::default());
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

fn relay_error(method: &str, error: rmcp::ServiceError) -> ErrorData {
    match error {
        rmcp::ServiceError::McpError(error) => error,
        other => ErrorData::internal_error(
            format!("the client connected to outrig did not answer {method}: {other}"),
            None,
        ),
    }
}

/// The client to ask `method`, when it declared `offers`.
fn client_for(
    hub: &Hub,
    server: &str,
    method: &str,
    offers: impl Fn(&ClientCapabilities) -> bool,
) -> Result<Peer<RoleServer>, ErrorData> {
    let peer = hub.asked_by(server).ok_or_else(|| no_client(method))?;
    let declared = peer
        .peer_info()
        .map(|info| offers(&info.capabilities))
        .unwrap_or(false);
    if declared {
        Ok(peer)
    } else {
        Err(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("the client connected to outrig does not offer {method}"),
            None,
        ))
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
        let method = "sampling/createMessage";
        let peer = client_for(&self.hub, &self.server, method, |c| c.sampling.is_some())?;
        peer.create_message(params)
            .await
            .map_err(|e| relay_error(method, e))
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let method = "elicitation/create";
        let peer = client_for(&self.hub, &self.server, method, |c| c.elicitation.is_some())?;
        peer.create_elicitation(params)
            .await
            .map_err(|e| relay_error(method, e))
    }

    #[allow(deprecated)]
    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let method = "roots/list";
        let peer = client_for(&self.hub, &self.server, method, |c| c.roots.is_some())?;
        peer.list_roots().await.map_err(|e| relay_error(method, e))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.hub.progress(params).await;
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        for peer in self.hub.all() {
            let _ = peer.notify_logging_message(params.clone()).await;
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let uri = params.uri.clone();
        for peer in self.hub.peers(|c| c.subscriptions.contains(uri.as_str())) {
            let _ = peer.notify_resource_updated(params.clone()).await;
        }
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
}
