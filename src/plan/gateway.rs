//! The part of a plan that `outrig mcp` carries out: one image's sandbox and the servers
//! whose tools the allow-lists could publish, and the image's build or pull only when
//! asked (`--build`): a client never waits on a build.

use super::{Action, Address, Plan};
use crate::error::Error;

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
        Address::Sandbox(name) => name == image,
        Address::Server { image: of, server } => of == image && may_publish(server, allow),
        Address::Agent(_) | Address::Container(_) => false,
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
