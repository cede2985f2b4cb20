//! One session, run the same way for `apply`, `mcp` and `lock`: begun (its record and the
//! plan it carries out written, see [`Project::begin_session`]), then carried out — the
//! plan applied, the servers handed to the command's work (the agent, the gateway, the
//! pinning), the end recorded, the teardown done — by [`Project::carry_out`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio_util::sync::CancellationToken;

use crate::apply::{self, Stop};
use crate::error::Error;
use crate::mcp::Backend;
use crate::mcp::relay::Hub;
use crate::plan::Plan;
use crate::secret::Redactor;
use crate::session::{EndReason, Session};

use super::Project;

/// How a command's session runs, besides its plan.
pub struct SessionOptions {
    /// Values to keep out of records and logs besides the config's variables (an agent's
    /// API key, a gateway's bearer token).
    pub secrets: Vec<String>,
    /// Leave the sandbox running after success.
    pub keep: bool,
    /// While set, SIGINT is left to the work (the agent's REPL).
    pub interrupts_handled: Option<Arc<AtomicBool>>,
    /// Where what the servers send towards their clients goes (a gateway's clients).
    pub hub: Option<Arc<Hub>>,
    /// Cancelled when the gateway's client closed its session.
    pub client_gone: Option<CancellationToken>,
    /// Why the session ended when its work returns.
    pub done: EndReason,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions {
            secrets: Vec::new(),
            keep: false,
            interrupts_handled: None,
            hub: None,
            client_gone: None,
            done: EndReason::Completed,
        }
    }
}

impl Project {
    /// Carry out `plan` in the begun `session` on `runtime`: apply it, hand the servers that
    /// answered to `work` (with the redactor that keeps every secret of this session out of
    /// what it writes), record the end, tear down (see [`apply::apply`]).
    pub fn carry_out<W>(
        &self,
        plan: &Plan,
        session: &mut Session,
        options: SessionOptions,
        runtime: &tokio::runtime::Runtime,
        work: W,
    ) -> Result<Result<(), Stop>, Error>
    where
        W: AsyncFnOnce(&mut Session, Vec<Backend>, Redactor) -> Result<(), Error>,
    {
        let env = self.lookup();
        let key = self.fingerprint_key()?;
        let mut redactor = self.redactor(&plan.desired);
        redactor.add(options.secrets);
        let defaults = self.apply_context(&env, &key, redactor.clone());
        let context = apply::Context {
            keep: options.keep,
            interrupts_handled: options.interrupts_handled,
            hub: options.hub.unwrap_or(defaults.hub.clone()),
            client_gone: options.client_gone,
            done: options.done,
            ..defaults
        };
        let result = runtime.block_on(apply::apply(
            plan,
            session,
            &context,
            async |session: &mut Session, backends: Vec<Backend>| {
                work(session, backends, redactor).await
            },
        ));
        Ok(result)
    }
}
