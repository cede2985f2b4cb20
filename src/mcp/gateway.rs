//! The gateway behind `outrig mcp`: one MCP server that republishes everything the
//! servers in the sandbox offer — tools (see [`super::toolbox`]), prompts and resources
//! (see [`super::catalog`]), completion, logging — and relays what they send back
//! (see [`super::relay`]). [`Surface`] is what every client is served; [`Gateway`] is the
//! rmcp handler of one client's session. It serves one client on stdio
//! ([`super::stdio`]) or any number over Streamable HTTP ([`super::http`]).
//!
//! Both protocol eras are served by rmcp (`initialize`, and 2026-07-28's
//! `server/discover` with per-request `_meta`).
//!
//! Logging is deprecated by 2026-07-28 but live in 2025-11-25: it is relayed.
#![allow(deprecated)]

use std::sync::{Arc, RwLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, CustomRequest,
    CustomResult, ErrorCode, GetPromptRequestParams, GetPromptResponse, Implementation,
    JsonRpcMessage, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, Reference, RequestMetaObject, ResultType, ServerCapabilities,
    ServerConfig, ServerJsonRpcMessage, ServerResult, SetLevelRequestParams,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::oneshot;

use super::Backend;
use super::catalog::{Catalog, Lists};
use super::relay::{Hub, ListKind};
use super::startup::Startup;
use super::toolbox::{Outcome, Toolbox};
use super::transport::CallError;
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

    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
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
    async fn forward<T: serde::de::DeserializeOwned>(
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

    fn backend(&self, index: usize) -> Result<&Backend, ErrorData> {
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
fn tools_as_written(
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
        .flat_map(|b| super::startup::offers(&b.capabilities))
        .collect();
    super::startup::declared(&offered)
}

/// The client-to-server methods of MCP. rmcp reads a request for one of them whose
/// parameters do not fit as a custom request; those are answered with -32602.
const MCP_METHODS: [&str; 15] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
];

/// The error for a custom request: -32602 when it is one of MCP's methods with
/// malformed parameters, else -32601 naming it.
pub(super) fn unknown_request(request: &CustomRequest) -> ErrorData {
    let method = request.method.as_str();
    if MCP_METHODS.contains(&method) {
        let detail = request
            .params
            .as_ref()
            .and_then(|p| {
                let arguments = p.get("arguments")?;
                (!arguments.is_object())
                    .then(|| "`arguments` must be an object of named arguments".to_string())
            })
            .unwrap_or_else(|| "they do not match the method's schema".to_string());
        return ErrorData::invalid_params(format!("invalid params for `{method}`: {detail}"), None);
    }
    not_offered(method, "it is not an MCP method outrig serves")
}

/// -32601 for a method the gateway does not offer, naming it.
fn not_offered(method: &str, why: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("method not found: `{method}` is not offered by outrig's gateway ({why})"),
        None,
    )
}

/// One client's seat at the gateway: its id in the hub, from its first request on.
struct Seat {
    hub: Arc<Hub>,
    pub(super) id: u64,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.hub.disconnect(self.id);
    }
}

/// The MCP server handler: one per client session. Until the servers answer, it
/// answers what [`Startup`] knows and holds the rest.
#[derive(Clone)]
pub struct Gateway {
    pub(super) startup: Arc<Startup>,
    seat: Arc<Seat>,
}

impl Gateway {
    /// This client's id in the hub.
    pub(super) fn client_id(&self) -> u64 {
        self.seat.id
    }

    /// A gateway serving `surface`, which is ready.
    pub fn new(surface: Arc<Surface>) -> Gateway {
        Gateway::with_out(Startup::ready(surface), None)
    }

    /// A gateway whose notifications to its client are written to `out` (stdio).
    pub(super) fn with_out(startup: Arc<Startup>, out: Option<super::relay::Sink>) -> Gateway {
        let seat = Arc::new(Seat {
            hub: startup.hub().clone(),
            id: startup.hub().connect(out),
        });
        Gateway { startup, seat }
    }

    /// This client's id in the hub, which learns its session on the way.
    fn client(&self, peer: &Peer<RoleServer>) -> u64 {
        self.startup.hub().attach_peer(self.seat.id, peer);
        self.seat.id
    }

    /// The surface, once the servers answered (or the error they could not start with).
    pub(super) async fn surface(&self) -> Result<Arc<Surface>, ErrorData> {
        self.startup.surface().await
    }

    /// What the handshake declared.
    fn declared(&self) -> &ServerCapabilities {
        self.startup.declared()
    }

    /// A message to the client, with a `tools/list` result's definitions as their servers
    /// wrote them (rmcp's model of a tool leaves out fields such as `execution`).
    pub fn as_written(&self, item: ServerJsonRpcMessage) -> ServerJsonRpcMessage {
        match item {
            JsonRpcMessage::Response(mut response) => {
                if let ServerResult::ListToolsResult(result) = &response.result {
                    response.result = ServerResult::CustomResult(CustomResult(tools_as_written(
                        result,
                        |name| self.startup.raw_tool(name),
                    )));
                }
                JsonRpcMessage::Response(response)
            }
            other => other,
        }
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(self.declared().clone())
            .with_server_info(Implementation::new("outrig", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools and prompts of MCP servers running in an outrig podman sandbox, named <server>__<name>; resources keep their servers' URIs.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.client(&context.peer);
        Ok(ListToolsResult::with_all_items(self.startup.tools().await?))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.startup.tool(name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let client = self.client(&context.peer);
        let surface = self.surface().await?;
        let cancelled = context.ct.clone();
        let answered = surface
            .call_in_rounds(request, &context.meta, client, cancelled.cancelled_owned())
            .await
            .unwrap_or_else(|| {
                Err(ErrorData::internal_error(
                    "the client cancelled the call",
                    None,
                ))
            });
        // rmcp drops `resultType` again for older clients.
        Ok(with_result_type(answered?))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.client(&context.peer);
        if self.declared().prompts.is_none() {
            return Err(not_offered(
                "prompts/list",
                "no server in this sandbox has prompts",
            ));
        }
        let surface = self.surface().await?;
        Ok(ListPromptsResult::with_all_items(
            surface.catalog().prompts().to_vec(),
        ))
    }

    async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let client = self.client(&context.peer);
        let surface = self.surface().await?;
        let target = surface.catalog().prompt(&request.name).cloned().ok_or_else(|| {
            ErrorData::invalid_params(
                format!("unknown prompt `{}`: prompts are named <server>__<prompt>, as prompts/list gives them", request.name),
                None,
            )
        })?;
        let backend = surface.backend(target.backend)?;
        request.name = target.name;
        let result: serde_json::Value = surface
            .forward(backend, "prompts/get", &request, &context.meta, client)
            .await?;
        if is_input_required(&result) {
            return Ok(GetPromptResponse::InputRequired(from_value(result)?));
        }
        let mut result: rmcp::model::GetPromptResult = from_value(result)?;
        result.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(GetPromptResponse::Complete(result))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.client(&context.peer);
        if self.declared().resources.is_none() {
            return Err(not_offered(
                "resources/list",
                "no server in this sandbox has resources",
            ));
        }
        let surface = self.surface().await?;
        Ok(ListResourcesResult::with_all_items(
            surface.catalog().resources().to_vec(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.client(&context.peer);
        if self.declared().resources.is_none() {
            return Err(not_offered(
                "resources/templates/list",
                "no server in this sandbox has resources",
            ));
        }
        let surface = self.surface().await?;
        Ok(ListResourceTemplatesResult::with_all_items(
            surface.catalog().templates().to_vec(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let client = self.client(&context.peer);
        let surface = self.surface().await?;
        let index = resource_backend(&surface, &request.uri)?;
        let backend = surface.backend(index)?;
        let result: serde_json::Value = surface
            .forward(backend, "resources/read", &request, &context.meta, client)
            .await?;
        if is_input_required(&result) {
            return Ok(ReadResourceResponse::InputRequired(from_value(result)?));
        }
        let mut result: rmcp::model::ReadResourceResult = from_value(result)?;
        result.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(ReadResourceResponse::Complete(result))
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let client = self.client(&context.peer);
        let surface = self.surface().await?;
        let index = resource_backend(&surface, &request.uri)?;
        let backend = surface.backend(index)?;
        let _: serde_json::Value = surface
            .forward(
                backend,
                "resources/subscribe",
                &request,
                &context.meta,
                client,
            )
            .await?;
        surface.hub.subscribe(client, &request.uri);
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let client = self.client(&context.peer);
        let surface = self.surface().await?;
        surface.hub.unsubscribe(client, &request.uri);
        if surface.hub.subscribed(&request.uri) {
            return Ok(());
        }
        let index = resource_backend(&surface, &request.uri)?;
        let backend = surface.backend(index)?;
        let _: serde_json::Value = surface
            .forward(
                backend,
                "resources/unsubscribe",
                &request,
                &context.meta,
                client,
            )
            .await?;
        Ok(())
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let client = self.client(&context.peer);
        if self.declared().completions.is_none() {
            return Err(not_offered(
                "completion/complete",
                "no server in this sandbox offers completion",
            ));
        }
        let surface = self.surface().await?;
        let index = match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                let target = surface
                    .catalog()
                    .prompt(&prompt.name)
                    .cloned()
                    .ok_or_else(|| {
                        ErrorData::invalid_params(format!("unknown prompt `{}`", prompt.name), None)
                    })?;
                prompt.name = target.name;
                target.backend
            }
            Reference::Resource(resource) => {
                surface.catalog().template(&resource.uri).ok_or_else(|| {
                    ErrorData::invalid_params(
                        format!(
                            "no server in this sandbox lists a resource template `{}`",
                            resource.uri
                        ),
                        None,
                    )
                })?
            }
            _ => {
                return Err(ErrorData::invalid_params(
                    "completion/complete: the reference is neither a prompt nor a resource",
                    None,
                ));
            }
        };
        let backend = surface.backend(index)?;
        if backend.capabilities.completions.is_none() {
            return Ok(CompleteResult::default());
        }
        // rmcp takes `resultType` out again for older clients; a server of the older
        // era gives none.
        let mut result: CompleteResult = surface
            .forward(
                backend,
                "completion/complete",
                &request,
                &context.meta,
                client,
            )
            .await?;
        result.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(result)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let client = self.client(&context.peer);
        if self.declared().logging.is_none() {
            return Err(not_offered(
                "logging/setLevel",
                "no server in this sandbox logs to its client",
            ));
        }
        let surface = self.surface().await?;
        for backend in surface.toolbox.backends() {
            if backend.capabilities.logging.is_some() {
                let answer: Result<serde_json::Value, ErrorData> = surface
                    .forward(backend, "logging/setLevel", &request, &context.meta, client)
                    .await;
                if let Err(error) = answer {
                    surface.events.event(&format!(
                        "server `{}` refused logging/setLevel: {}",
                        backend.server, error.message
                    ));
                }
            }
        }
        Ok(())
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        Err(unknown_request(&request))
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        self.client(&context.peer);
        // Servers that start later ask for the roots themselves.
        let Some(surface) = self.startup.current() else {
            return;
        };
        for backend in surface.toolbox.backends() {
            backend
                .calls
                .notify("notifications/roots/list_changed", None)
                .await;
        }
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, ErrorData> {
        self.client(&context.peer);
        Ok(rmcp::model::DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.client(&context.peer);
        let client = context
            .peer
            .peer_info()
            .map(|info| {
                format!(
                    "{} {} (protocol {})",
                    info.client_info.name, info.client_info.version, info.protocol_version
                )
            })
            .unwrap_or_else(|| "a client".to_string());
        // The session's log exists once the servers answered.
        let startup = self.startup.clone();
        tokio::spawn(async move {
            if let Ok(surface) = startup.surface().await {
                surface.events.event(&format!("client connected: {client}"));
            }
        });
    }
}

/// The server that serves resource `uri`.
fn resource_backend(surface: &Surface, uri: &str) -> Result<usize, ErrorData> {
    surface.catalog().resource(uri).ok_or_else(|| {
        ErrorData::new(
            ErrorCode::RESOURCE_NOT_FOUND,
            format!("resource not found: no server in this sandbox lists `{uri}`"),
            Some(serde_json::json!({ "uri": uri })),
        )
    })
}

fn is_input_required(result: &serde_json::Value) -> bool {
    result.get("resultType").and_then(|t| t.as_str()) == Some("input_required")
}

fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| {
        ErrorData::internal_error(format!("a server's result is malformed: {e}"), None)
    })
}

/// A tool result with `resultType` set (rmcp drops it again for older clients).
pub(super) fn with_result_type(response: CallToolResponse) -> CallToolResponse {
    match response {
        CallToolResponse::Complete(mut result) => {
            result.result_type.get_or_insert(ResultType::COMPLETE);
            CallToolResponse::Complete(result)
        }
        other => other,
    }
}
