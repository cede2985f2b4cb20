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

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, CustomRequest,
    CustomResult, ErrorCode, GetPromptRequestParams, GetPromptResponse, Implementation,
    JsonRpcMessage, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    Reference, ResultType, ServerCapabilities, ServerConfig, ServerJsonRpcMessage, ServerResult,
    SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::relay::Hub;
use super::startup::Startup;
use super::surface::{Surface, tools_as_written};

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
        surface.hub().subscribe(client, &request.uri);
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
        surface.hub().unsubscribe(client, &request.uri);
        if surface.hub().subscribed(&request.uri) {
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
