//! What every client of one `outrig mcp` gateway is served: the sandbox's tools (see
//! [`super::toolbox`]), prompts and resources (see [`super::catalog`]), completion and
//! logging, and the hub that relays what its servers send (see [`super::relay`]); and the
//! capabilities the gateway declares for what its servers offer. [`super::gateway`] serves
//! one client's session of it.
//!
//! Logging is deprecated by 2026-07-28 but live in 2025-11-25: it is relayed.
#![allow(deprecated)]

use std::sync::{Arc, RwLock};

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PromptsCapability, ProtocolVersion,
    RequestMetaObject, ResourcesCapability, ServerCapabilities, ToolsCapability,
};
use tokio::sync::oneshot;

use super::Backend;
use super::catalog::{Catalog, Lists};
use super::relay::{Hub, ListKind};
use super::toolbox::{Outcome, Toolbox};
use super::transport::CallError;
use crate::lock::Offer;
use crate::session::log::AppendLog;

/// What every client of one gateway is served: the sandbox's tools, prompts and
/// resources, and the hub that relays what its servers send.
pub struct Surface {
    pub(super) toolbox: Arc<Toolbox>,
    /// 2026-07-28 clients' calls waiting for their responses to a server's requests.
    pub(super) rounds: super::rounds::Rounds,
    catalog: RwLock<Catalog>,
    hub: Arc<Hub>,
    pub(super) events: Arc<AppendLog>,
    capabilities: ServerCapabilities,
}

/// Keys of a request's `_meta` that describe the client's own session (2026-07-28); the
/// server's connection carries outrig's.
const SESSION_META_PREFIX: &str = "io.modelcontextprotocol/";

impl Surface {
    /// Read every server's prompts, resources and templates, and say what the gateway
    /// offers: the union of what the servers declare.
    pub async fn new(toolbox: Arc<Toolbox>, hub: Arc<Hub>, events: Arc<AppendLog>) -> Arc<Surface> {
        let backends = toolbox.backends();
        let mut lists = Vec::new();
        for backend in backends {
            lists.push(Lists {
                prompts: list_of(backend, ListKind::Prompts).await.prompts,
                ..list_of(backend, ListKind::Resources).await
            });
        }
        let catalog = Catalog::new(backends, lists, toolbox.unprefixed_server());
        report_duplicates(&catalog, &events);
        Surface::with_catalog(toolbox, hub, events, catalog)
    }

    /// A surface whose prompts and resources were read already.
    pub fn with_catalog(
        toolbox: Arc<Toolbox>,
        hub: Arc<Hub>,
        events: Arc<AppendLog>,
        catalog: Catalog,
    ) -> Arc<Surface> {
        Arc::new(Surface {
            rounds: Default::default(),
            capabilities: union(toolbox.backends()),
            catalog: RwLock::new(catalog),
            toolbox,
            hub,
            events,
        })
    }

    /// What is served, for the user: `12 tools, 4 prompts, 7 resources`.
    pub fn summary(&self) -> String {
        let catalog = self.catalog.read().expect("not poisoned");
        let mut parts = vec![format!("{} tools", self.toolbox.tools().len())];
        if !catalog.prompts().is_empty() {
            parts.push(format!("{} prompts", catalog.prompts().len()));
        }
        let resources = catalog.resources().len() + catalog.templates().len();
        if resources > 0 {
            parts.push(format!("{resources} resources and templates"));
        }
        parts.join(", ")
    }

    pub fn toolbox(&self) -> &Arc<Toolbox> {
        &self.toolbox
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// What the gateway declares for these servers.
    pub fn capabilities(&self) -> &ServerCapabilities {
        &self.capabilities
    }

    pub(super) fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().expect("not poisoned")
    }

    /// Act on the list changes servers announce until the hub closes: read the list
    /// again and tell every client.
    pub fn watch_changes(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let mut changes = self.hub.take_changes()?;
        let surface = self.clone();
        Some(tokio::spawn(async move {
            while let Some(changed) = changes.recv().await {
                surface.changed(&changed.server, changed.list).await;
            }
        }))
    }

    async fn changed(&self, server: &str, kind: ListKind) {
        let backends = self.toolbox.backends();
        let Some(index) = backends.iter().position(|b| b.key == server) else {
            return;
        };
        let backend = &backends[index];
        self.events.event(&format!(
            "server `{}` said its {} list changed",
            backend.server,
            match kind {
                ListKind::Tools => "tool",
                ListKind::Prompts => "prompt",
                ListKind::Resources => "resource",
            }
        ));
        match kind {
            ListKind::Tools => match super::client::list_tools(&backend.calls).await {
                Ok(listed) => self.toolbox.refresh(index, listed),
                Err(error) => {
                    self.events.event(&format!(
                        "could not read `{}`'s tools again: {error}",
                        backend.server
                    ));
                    return;
                }
            },
            kind => {
                let lists = list_of(backend, kind).await;
                let mut catalog = self.catalog.write().expect("not poisoned");
                catalog.replace(index, kind, lists);
                report_duplicates(&catalog, &self.events);
            }
        }
        use rmcp::model::{NotificationNoParam, ServerNotification};
        let notification = match kind {
            ListKind::Tools => {
                ServerNotification::ToolListChangedNotification(NotificationNoParam::default())
            }
            ListKind::Prompts => {
                ServerNotification::PromptListChangedNotification(NotificationNoParam::default())
            }
            ListKind::Resources => {
                ServerNotification::ResourceListChangedNotification(NotificationNoParam::default())
            }
        };
        self.hub.notify_all(notification).await;
    }

    /// Send `method` to `backend` on behalf of `client`, with the request's `_meta`
    /// passed on (its progress token exchanged for one of the gateway's), and read the
    /// result.
    pub(super) async fn forward<T: serde::de::DeserializeOwned>(
        &self,
        backend: &Backend,
        method: &str,
        params: impl serde::Serialize,
        meta: &RequestMetaObject,
        client: u64,
    ) -> Result<T, ErrorData> {
        let (_working, meta) = self.pass_on(meta, client, &backend.key, None);
        let mut params = serde_json::to_value(params).unwrap_or_default();
        if let Some(object) = params.as_object_mut() {
            object.remove("_meta");
            if let Some(meta) = meta {
                object.insert(
                    "_meta".into(),
                    serde_json::to_value(meta).unwrap_or_default(),
                );
            }
        }
        let result = backend
            .calls
            .request(method, params)
            .await
            .map_err(|error| match error {
                CallError::Rpc(error) => error,
                CallError::Closed => ErrorData::internal_error(
                    format!(
                        "server `{}` is not running: it exited during this session (its stderr is in the session's {})",
                        backend.server, backend.stderr_log
                    ),
                    None,
                ),
                CallError::Unexpected => ErrorData::internal_error(
                    format!("server `{}` answered {method} with something unexpected", backend.server),
                    None,
                ),
            })?;
        serde_json::from_value(result).map_err(|e| {
            ErrorData::internal_error(
                format!(
                    "server `{}` answered {method} with a malformed result: {e}",
                    backend.server
                ),
                None,
            )
        })
    }

    /// Register a request of `client` with the server `key` while it runs, and the
    /// `_meta` to pass on for it.
    fn pass_on(
        &self,
        meta: &RequestMetaObject,
        client: u64,
        key: &str,
        rounds: Option<super::relay::Rounds>,
    ) -> (super::relay::Working<'_>, Option<RequestMetaObject>) {
        let (working, token) = self
            .hub
            .working(client, key, meta.get_progress_token(), rounds);
        let mut passed = RequestMetaObject::new();
        for (name, value) in meta.0.0.iter() {
            if name != "progressToken" && !name.starts_with(SESSION_META_PREFIX) {
                passed.0.0.insert(name.clone(), value.clone());
            }
        }
        if let Some(token) = token {
            passed.set_progress_token(token);
        }
        (working, (!passed.0.0.is_empty()).then_some(passed))
    }

    /// Call a published tool for `client`.
    pub(super) async fn call(
        &self,
        params: CallToolRequestParams,
        meta: &RequestMetaObject,
        client: u64,
        rounds: Option<super::relay::Rounds>,
        cancelled: impl Future<Output = ()>,
    ) -> (super::toolbox::Called, super::toolbox::Audit<'_>) {
        let key = self
            .toolbox
            .backend_of(&params.name)
            .map(|b| b.key.clone())
            .unwrap_or_default();
        let (_working, meta) = self.pass_on(meta, client, &key, rounds);
        let passed = super::toolbox::Passed {
            meta,
            input_responses: params.input_responses,
            request_state: params.request_state,
        };
        let (called, mut audit) = self
            .toolbox
            .call_audit_later(&params.name, params.arguments, passed, cancelled)
            .await;
        audit.client = Some(client);
        (called, audit)
    }

    /// Call a published tool for `client` and audit it. A client of the 2026-07-28 era
    /// takes the requests a server makes meanwhile as rounds: the call is answered with
    /// an `InputRequiredResult` carrying them, goes on in the background, and hears the
    /// client's responses when it calls again with the `requestState` given.
    pub async fn call_in_rounds(
        self: &Arc<Self>,
        params: CallToolRequestParams,
        meta: &RequestMetaObject,
        client: u64,
        cancelled: impl Future<Output = ()>,
    ) -> Option<Result<CallToolResponse, ErrorData>> {
        if let Some(state) = params.request_state.as_deref() {
            let parked = match self.rounds.resume(state) {
                Ok(parked) => parked,
                Err(error) => return Some(Err(error)),
            };
            if let Some(parked) = parked {
                if let (Some(ours), Some(token)) = (&parked.progress, meta.get_progress_token()) {
                    self.hub.retarget_progress(ours, token);
                }
                let responses = params.input_responses.unwrap_or_default();
                return self.rounds.answer(parked, responses, cancelled).await;
            }
        }
        let current = meta
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        if !current {
            let (called, audit) = self.call(params, meta, client, None, cancelled).await;
            audit.write(&called);
            return (called.outcome != Outcome::Cancelled).then(|| called.into_result());
        }
        let (asks, asked) = tokio::sync::mpsc::unbounded_channel();
        let progress = meta.get_progress_token().map(|_| self.hub.new_token());
        let rounds = super::relay::Rounds {
            asks,
            capabilities: meta.client_capabilities().unwrap_or_default(),
            progress: progress.clone(),
        };
        let (done, result) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let surface = self.clone();
        let meta = meta.clone();
        tokio::spawn(async move {
            let stopped = async {
                if stopped.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let (called, audit) = surface
                .call(params, &meta, client, Some(rounds), stopped)
                .await;
            audit.write(&called);
            let cancelled = called.outcome == Outcome::Cancelled;
            if !cancelled {
                let _ = done.send(called.into_result());
            }
        });
        let mut parked = super::rounds::Parked::new(result, asked, stop);
        parked.progress = progress;
        self.rounds.wait(parked, cancelled).await
    }

    pub(super) fn backend(&self, index: usize) -> Result<&Backend, ErrorData> {
        self.toolbox
            .backends()
            .get(index)
            .ok_or_else(|| ErrorData::internal_error("no such server", None))
    }

    /// `tools/list`'s result with each definition as its server wrote it.
    pub fn tools_as_written(&self, result: &ListToolsResult) -> serde_json::Value {
        tools_as_written(result, |name| self.toolbox.raw_tool(name))
    }
}

/// `tools/list`'s result with each definition as `raw` gives it (rmcp's model of a tool
/// leaves out fields such as `execution`).
pub(super) fn tools_as_written(
    result: &ListToolsResult,
    raw: impl Fn(&str) -> Option<serde_json::Map<String, serde_json::Value>>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(result).unwrap_or_default();
    if let Some(tools) = value.get_mut("tools").and_then(|t| t.as_array_mut()) {
        for tool in tools {
            let name = tool
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default();
            if let Some(raw) = raw(name) {
                *tool = serde_json::Value::Object(raw);
            }
        }
    }
    value
}

/// Every page of one kind of list from `backend`; nothing when it does not offer it or
/// fails to answer (said in the event log by the caller's use).
async fn list_of(backend: &Backend, kind: ListKind) -> Lists {
    let capabilities = &backend.capabilities;
    let mut lists = Lists::default();
    match kind {
        ListKind::Prompts if capabilities.prompts.is_some() => {
            lists.prompts = all_pages(backend, "prompts/list", "prompts").await;
        }
        ListKind::Resources if capabilities.resources.is_some() => {
            lists.resources = all_pages(backend, "resources/list", "resources").await;
            lists.templates =
                all_pages(backend, "resources/templates/list", "resourceTemplates").await;
        }
        _ => {}
    }
    lists
}

async fn all_pages<T: serde::de::DeserializeOwned>(
    backend: &Backend,
    method: &str,
    field: &str,
) -> Vec<T> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let params = match &cursor {
            Some(cursor) => serde_json::json!({ "cursor": cursor }),
            None => serde_json::json!({}),
        };
        let Ok(result) =
            tokio::time::timeout(backend.call_timeout, backend.calls.request(method, params)).await
        else {
            break;
        };
        let Ok(result) = result else { break };
        if let Some(list) = result.get(field).and_then(|l| l.as_array()) {
            items.extend(
                list.iter()
                    .filter_map(|item| serde_json::from_value(item.clone()).ok()),
            );
        }
        match result.get("nextCursor").and_then(|c| c.as_str()) {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                cursor = Some(next.to_string())
            }
            _ => break,
        }
    }
    items
}

fn report_duplicates(catalog: &Catalog, events: &AppendLog) {
    for duplicate in catalog.duplicates() {
        let message = format!(
            "resource `{}` is listed by servers `{}` and `{}`; `{}` serves it",
            duplicate.uri, duplicate.served_by, duplicate.hidden, duplicate.served_by
        );
        events.event(&message);
        crate::output::status!("outrig mcp: {message}");
    }
}

/// The capabilities the gateway declares: tools always, and prompts, resources,
/// completion and logging when any server declares them.
fn union(backends: &[Backend]) -> ServerCapabilities {
    let offered: Vec<crate::lock::Offer> = backends
        .iter()
        .flat_map(|b| offers(&b.capabilities))
        .collect();
    declared(&offered)
}

/// What a server offers besides tools, from the capabilities it declared.
pub fn offers(capabilities: &ServerCapabilities) -> Vec<Offer> {
    let mut offers = Vec::new();
    if capabilities.prompts.is_some() {
        offers.push(Offer::Prompts);
    }
    if let Some(resources) = &capabilities.resources {
        offers.push(Offer::Resources);
        if resources.subscribe == Some(true) {
            offers.push(Offer::ResourceSubscriptions);
        }
    }
    if capabilities.completions.is_some() {
        offers.push(Offer::Completions);
    }
    if capabilities.logging.is_some() {
        offers.push(Offer::Logging);
    }
    offers
}

/// What the gateway declares for servers that together offer `offered`: tools (whose list
/// may change) always, and each other thing some server offers.
pub fn declared(offered: &[Offer]) -> ServerCapabilities {
    let mut capabilities = ServerCapabilities::default();
    let mut tools = ToolsCapability::default();
    tools.list_changed = Some(true);
    capabilities.tools = Some(tools);
    if offered.contains(&Offer::Prompts) {
        let mut prompts = PromptsCapability::default();
        prompts.list_changed = Some(true);
        capabilities.prompts = Some(prompts);
    }
    if offered.contains(&Offer::Resources) {
        let mut resources = ResourcesCapability::default();
        resources.list_changed = Some(true);
        if offered.contains(&Offer::ResourceSubscriptions) {
            resources.subscribe = Some(true);
        }
        capabilities.resources = Some(resources);
    }
    if offered.contains(&Offer::Completions) {
        capabilities.completions = Some(Default::default());
    }
    if offered.contains(&Offer::Logging) {
        capabilities.logging = Some(Default::default());
    }
    capabilities
}
