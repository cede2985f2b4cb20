//! What `outrig mcp` serves — one image, chosen by `--image`, `--agent` or the config, and
//! the allow-lists its tools must match — and the part of a plan it carries out: that
//! image's sandbox and the servers whose tools the allow-lists could publish, and the
//! image's build or pull only when asked (`--build`): a client never waits on a build.

use super::desired::Target;
use super::{Action, Address, Plan};
use crate::config::Config;
use crate::error::Error;

/// What `outrig mcp` serves: the plan's target, the image, and the allow-lists a tool must
/// match (the agent's, then `--tools`).
pub struct Served<'a> {
    pub target: Target<'a>,
    pub image: String,
    pub allow: Vec<Vec<String>>,
}

impl<'a> Served<'a> {
    /// From `--image`, `--agent` and `--tools`.
    pub fn choose(
        config: &Config,
        image: Option<&'a str>,
        agent: Option<&'a str>,
        tools: &[String],
    ) -> Result<Served<'a>, Error> {
        let target = target(config, image, agent)?;
        let (image, allow) = selection(config, image, tools, target)?;
        Ok(Served {
            target,
            image,
            allow,
        })
    }
}

/// What to plan for: the agent (named or default), or one image.
fn target<'a>(
    config: &Config,
    image: Option<&'a str>,
    agent: Option<&'a str>,
) -> Result<Target<'a>, Error> {
    if let Some(image) = image {
        return Ok(Target::Image(image));
    }
    if agent.is_some() || config.default_agent.is_some() {
        return Ok(Target::Agent(agent));
    }
    // Without a default agent, fall back to the only image with servers.
    let with_servers: Vec<&String> = config
        .images
        .iter()
        .filter(|(_, i)| !i.servers.is_empty())
        .map(|(n, _)| n)
        .collect();
    match with_servers.as_slice() {
        [_] => Ok(Target::Agent(None)),
        [] => Err(Error::new("no image in the config has MCP servers")
            .hint("add `[images.<name>.mcp.<server>]` with a `command`")),
        several => Err(
            Error::new("several images have MCP servers; choose one").hint(format!(
                "pass `--image NAME` ({}) or `--agent NAME`",
                several
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
    }
}

/// The image to serve and the tool allow-list (the agent's, narrowed by `--tools`).
fn selection(
    config: &Config,
    image: Option<&str>,
    tools: &[String],
    target: Target<'_>,
) -> Result<(String, Vec<Vec<String>>), Error> {
    let (agent, images) = super::desired::select(config, target)?;
    let agent = agent.as_ref().and_then(|name| config.agents.get(name));
    let image = match (image, agent) {
        (Some(image), _) => image.to_string(),
        (None, Some(agent)) => agent.image.clone(),
        (None, None) => images
            .first()
            .map(|i| i.to_string())
            .ok_or_else(|| Error::new("no image in the config has MCP servers"))?,
    };
    if config
        .images
        .get(&image)
        .is_none_or(|i| i.servers.is_empty())
    {
        return Err(
            Error::new(format!("image `{image}` has no MCP servers")).hint(format!(
                "add `[images.{image}.mcp.<server>]` with a `command`"
            )),
        );
    }
    // Every list must match: the agent's allow-list, then `--tools`.
    let mut allow: Vec<Vec<String>> = agent.and_then(|a| a.tools.clone()).into_iter().collect();
    if !tools.is_empty() {
        allow.push(tools.to_vec());
    }
    Ok((image, allow))
}

/// The part of `plan` this gateway carries out: the image's sandbox and servers, and its
/// build or pull only with `--build`. Pending builds without it are an error.
pub fn narrow(plan: &Plan, image: &str, allow: &[Vec<String>], build: bool) -> Result<Plan, Error> {
    let pending = plan.steps.iter().find(|s| {
        s.address == Address::Image(image.to_string())
            && matches!(s.action, Action::Create | Action::Replace)
    });
    if let (Some(step), false) = (pending, build) {
        let what = if plan.desired.images[image].build.is_some() {
            "built"
        } else {
            "pulled"
        };
        return Err(Error::new(format!(
            "image `{image}` must be {what} before its tools can be served ({})",
            super::render::reasons(plan, step)
        ))
        .hint("run `outrig apply` first, or start the gateway with `outrig mcp --build`"));
    }
    let mut narrowed = plan.clone();
    narrowed.steps.retain(|s| match &s.address {
        Address::Image(name) => name == image && build,
        Address::Sandbox(name) | Address::Proxy(name) => name == image,
        Address::Server { image: of, server } => of == image && may_publish(server, allow),
        Address::Agent(_) | Address::Container(_) | Address::Network(_) => false,
    });
    if !narrowed
        .steps
        .iter()
        .any(|s| matches!(&s.address, Address::Server { .. }))
    {
        return Err(Error::new(format!(
            "no server of image `{image}` can offer a tool the allow-lists accept"
        ))
        .hint("check the agent's `tools` and `--tools`"));
    }
    Ok(narrowed)
}

/// Whether some tool of `server` could match every allow-list (by the server part of
/// each `<server>__<tool>` pattern); servers that could not are not started at all.
pub fn may_publish(server: &str, allow: &[Vec<String>]) -> bool {
    allow.iter().all(|patterns| {
        patterns
            .iter()
            .any(|pattern| match pattern.split_once("__") {
                Some((server_part, _)) => crate::glob::glob_match(server_part, server),
                // `*`, `fs*`: may match across the separator.
                None => {
                    crate::glob::glob_match(pattern, &format!("{server}__x"))
                        || pattern.contains('*')
                }
            })
    })
}

#[cfg(test)]
mod tests {
    use super::may_publish;

    #[test]
    fn servers_outside_every_allow_list_are_not_started() {
        let lists = |l: &[&[&str]]| -> Vec<Vec<String>> {
            l.iter()
                .map(|p| p.iter().map(|s| s.to_string()).collect())
                .collect()
        };
        assert!(may_publish("fs", &[]));
        assert!(may_publish(
            "fs",
            &lists(&[&["fs__*", "time__get_current_time"]])
        ));
        assert!(!may_publish(
            "everything",
            &lists(&[&["fs__*", "time__get_current_time"]])
        ));
        assert!(may_publish("everything", &lists(&[&["*"]])));
        assert!(!may_publish(
            "time",
            &lists(&[&["fs__*", "time__*"], &["fs__read*"]])
        ));
    }
}
