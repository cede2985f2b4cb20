//! What an agent needs before it runs: its settings, its provider with the API key and
//! header secrets read from the host now (an unset one stops the apply before anything
//! starts), its allow-list, and the values to redact.

use crate::agent::Settings;
use crate::agent::provider::Provider;
use crate::error::Error;

/// The agent's settings and provider, with the API key read now: an unset variable stops
/// the apply before anything starts.
pub struct AgentSetup {
    pub settings: Settings,
    pub model_name: String,
    pub provider_name: String,
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub request_timeout: std::time::Duration,
    pub retry_budget: std::time::Duration,
    pub allow: Vec<Vec<String>>,
    /// Values to redact: the key and header secrets.
    pub secrets: Vec<String>,
}

impl AgentSetup {
    pub fn provider(&self) -> Result<Provider, crate::agent::provider::ProviderError> {
        Provider::new(
            &self.provider_name,
            &self.base_url,
            self.api_key.clone(),
            self.headers.clone(),
            self.request_timeout,
            self.retry_budget,
        )
    }
}

impl AgentSetup {
    /// Agent `name`'s setup; `lookup` reads host variables.
    pub fn new(
        config: &crate::config::Config,
        name: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AgentSetup, Error> {
        let agent = &config.agents[name];
        let model = &config.models[&agent.model];
        let provider = &config.providers[&model.provider];
        let env = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut secrets = Vec::new();
        let api_key = match &provider.api_key_variable {
            Some(variable) => {
                let Some(key) = env(variable) else {
                    return Err(Error::new(format!(
                    "the API key of provider `{}` is not set: `{variable}` is empty or unset",
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
                    "header `{header}` of provider `{}` uses a variable that is not set ({template})",
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
        Ok(AgentSetup {
            settings: Settings {
                model: model.identifier.clone(),
                system_prompt: agent.system_prompt.clone(),
                temperature: model.temperature,
                max_tokens: model.max_tokens,
                tool_call_max: agent.tool_call_max,
                tool_result_max: agent.tool_result_max,
            },
            model_name: model.name.clone(),
            provider_name: provider.name.clone(),
            base_url: provider.base_url.clone(),
            api_key,
            headers,
            request_timeout: provider.request_timeout,
            retry_budget: provider.retry_budget,
            allow: agent.tools.clone().into_iter().collect(),
            secrets,
        })
    }
}
