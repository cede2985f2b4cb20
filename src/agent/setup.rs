//! What an agent needs before it runs: its settings, the models it may ask (its own, then
//! its fallbacks) with their providers' API keys and header secrets read from the host now
//! (an unset one stops the apply before anything starts), its allow-list, and the values to
//! redact.

use std::time::Duration;

use crate::agent::provider::{Endpoint, Provider, ProviderError};
use crate::agent::{Route, Settings};
use crate::config::model::ProviderStyle;
use crate::error::Error;

/// The agent's settings and models, with every API key read now: an unset variable stops
/// the apply before anything starts.
pub struct AgentSetup {
    pub settings: Settings,
    /// The agent's model first, then its fallbacks.
    pub routes: Vec<RouteSetup>,
    pub allow: Vec<Vec<String>>,
    /// Values to redact: the keys and header secrets.
    pub secrets: Vec<String>,
}

/// One model and how to reach its provider.
pub struct RouteSetup {
    pub model_name: String,
    pub identifier: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub provider_name: String,
    pub style: ProviderStyle,
    pub stream: bool,
    pub base_url: String,
    api_key: Option<String>,
    headers: Vec<(String, String)>,
    request_timeout: Duration,
    retry_budget: Duration,
}

impl AgentSetup {
    /// The routes, ready to ask; `stream: false` turns streaming off for all of them.
    pub fn routes(&self, stream: bool) -> Result<Vec<Route>, ProviderError> {
        self.routes
            .iter()
            .map(|r| {
                Ok(Route {
                    model: r.model_name.clone(),
                    identifier: r.identifier.clone(),
                    temperature: r.temperature,
                    max_tokens: r.max_tokens,
                    provider: Provider::new(Endpoint {
                        name: &r.provider_name,
                        style: r.style,
                        base_url: &r.base_url,
                        api_key: r.api_key.clone(),
                        headers: r.headers.clone(),
                        request_timeout: r.request_timeout,
                        retry_budget: r.retry_budget,
                        stream: r.stream && stream,
                    })?,
                })
            })
            .collect()
    }

    /// The agent's own model.
    pub fn primary(&self) -> &RouteSetup {
        &self.routes[0]
    }

    /// Agent `name`'s setup; `lookup` reads host variables.
    pub fn new(
        config: &crate::config::Config,
        name: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AgentSetup, Error> {
        let agent = &config.agents[name];
        let env = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut secrets = Vec::new();
        let mut routes = Vec::new();
        let mut names = vec![agent.model.clone()];
        // Fallbacks of fallbacks count too, each model once, in order.
        let mut index = 0;
        while index < names.len() {
            for next in &config.models[&names[index]].fallback {
                if !names.contains(next) {
                    names.push(next.clone());
                }
            }
            index += 1;
        }
        for (position, model_name) in names.iter().enumerate() {
            let model = &config.models[model_name];
            let provider = &config.providers[&model.provider];
            let role = if position == 0 {
                String::new()
            } else {
                format!(" (a fallback of agent `{name}`)")
            };
            let api_key = match &provider.api_key_variable {
                Some(variable) => {
                    let Some(key) = env(variable) else {
                        return Err(Error::new(format!(
                            "the API key of provider `{}`{role} is not set: `{variable}` is empty or unset",
                            provider.name
                        ))
                        .hint(format!("export {variable}=... (the key is read from the environment, never from a file)")));
                    };
                    secrets.push(key.clone());
                    Some(key)
                }
                None => None,
            };
            let mut headers = Vec::new();
            for (header, template) in &provider.headers {
                let Ok(value) = crate::secret::resolve(template, &env) else {
                    return Err(Error::new(format!(
                        "header `{header}` of provider `{}`{role} uses a variable that is not set ({template})",
                        provider.name
                    )));
                };
                if value != *template {
                    for variable in crate::secret::references(template) {
                        secrets.extend(env(&variable));
                    }
                }
                headers.push((header.clone(), value));
            }
            routes.push(RouteSetup {
                model_name: model.name.clone(),
                identifier: model.identifier.clone(),
                temperature: model.temperature,
                max_tokens: model.max_tokens,
                provider_name: provider.name.clone(),
                style: provider.style,
                stream: provider.stream,
                base_url: provider.base_url.clone(),
                api_key,
                headers,
                request_timeout: provider.request_timeout,
                retry_budget: provider.retry_budget,
            });
        }
        Ok(AgentSetup {
            settings: Settings {
                system_prompt: agent.system_prompt.clone(),
                tool_call_max: agent.tool_call_max,
                tool_result_max: agent.tool_result_max,
            },
            routes,
            allow: agent.tools.clone().into_iter().collect(),
            secrets,
        })
    }
}
