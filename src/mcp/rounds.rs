//! Tool calls of 2026-07-28 clients that a server interrupts with requests of its own
//! (sampling, elicitation, roots, as a 2025-11-25 server sends them). Such a client takes
//! no requests: the gateway answers its call with an `InputRequiredResult` whose
//! `inputRequests` are the server's requests and whose `requestState` names the call,
//! which goes on in the background ([`Parked`]). When the client calls again with that
//! state and its `inputResponses`, each response goes back to the server as the answer to
//! its request, and the call is waited on again — until it completes or asks again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::CallToolResponse;
use tokio::sync::{mpsc, oneshot};

use super::relay::Ask;

/// The prefix of the request states the gateway hands out; any other state is a
/// server's own and passes through.
const STATE_PREFIX: &str = "outrig-round-";

/// How long a call waits for its client to come back with responses.
const PARKED_FOR: Duration = Duration::from_secs(600);

/// How long the gateway waits for more requests after a server's first, to put them in
/// the same round.
const GATHER: Duration = Duration::from_millis(20);

type Answer = Result<CallToolResponse, ErrorData>;

/// A call waiting on its client.
pub struct Parked {
    result: oneshot::Receiver<Answer>,
    asked: mpsc::UnboundedReceiver<Ask>,
    stop: Option<oneshot::Sender<()>>,
    /// The input requests of the last round, by key, and where each response goes.
    waiting: Vec<(
        String,
        oneshot::Sender<Result<serde_json::Value, ErrorData>>,
    )>,
    since: Instant,
    /// The progress token the server was given for the call, if the client asked for
    /// progress.
    pub progress: Option<rmcp::model::NumberOrString>,
}

impl Parked {
    /// A call running in the background: its answer comes on `result`, the server's
    /// requests on `asked`; sending on `stop` cancels it.
    pub fn new(
        result: oneshot::Receiver<Answer>,
        asked: mpsc::UnboundedReceiver<Ask>,
        stop: oneshot::Sender<()>,
    ) -> Parked {
        Parked {
            result,
            asked,
            stop: Some(stop),
            waiting: Vec::new(),
            since: Instant::now(),
            progress: None,
        }
    }

    fn cancel(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The calls parked until their clients call again.
#[derive(Default)]
pub struct Rounds {
    parked: Mutex<HashMap<String, Parked>>,
    next: AtomicU64,
}

impl Rounds {
    /// The call a client's `requestState` names: `Ok(None)` when the state is not the
    /// gateway's (a server's own, passed through), an error when it names no waiting
    /// call.
    pub fn resume(&self, state: &str) -> Result<Option<Parked>, ErrorData> {
        if !state.starts_with(STATE_PREFIX) {
            return Ok(None);
        }
        self.parked
            .lock()
            .expect("not poisoned")
            .remove(state)
            .map(Some)
            .ok_or_else(|| {
                ErrorData::invalid_params(
                    "requestState names no call waiting at outrig's gateway (it was answered, or waited longer than 10 minutes): call the tool again without it",
                    None,
                )
            })
    }

    /// Hand the client's `responses` to the server's requests of the last round, and
    /// wait on the call again. `None` when the client cancelled.
    pub async fn answer(
        &self,
        mut parked: Parked,
        responses: BTreeMap<String, serde_json::Value>,
        cancelled: impl Future<Output = ()>,
    ) -> Option<Answer> {
        for (key, reply) in parked.waiting.drain(..) {
            let response = responses.get(&key).cloned().ok_or_else(|| {
                ErrorData::invalid_params(
                    format!("the client gave no response to input request `{key}`"),
                    None,
                )
            });
            let _ = reply.send(response);
        }
        self.wait(parked, cancelled).await
    }

    /// Wait until the call completes (its answer) or its server asks something (an
    /// `InputRequiredResult`, the call parked under a new state). `None` when the client
    /// cancelled, which cancels the call.
    pub async fn wait(
        &self,
        mut parked: Parked,
        cancelled: impl Future<Output = ()>,
    ) -> Option<Answer> {
        let first = tokio::select! {
            result = &mut parked.result => {
                return Some(result.unwrap_or_else(|_| {
                    Err(ErrorData::internal_error("the call ended without an answer", None))
                }));
            }
            Some(ask) = parked.asked.recv() => ask,
            () = cancelled => {
                parked.cancel();
                return None;
            }
        };
        let mut asks = vec![first];
        let gather = tokio::time::sleep(GATHER);
        tokio::pin!(gather);
        loop {
            tokio::select! {
                Some(ask) = parked.asked.recv() => asks.push(ask),
                () = &mut gather => break,
            }
        }
        let mut requests = serde_json::Map::new();
        for ask in asks {
            let key = format!("outrig-input-{}", self.next.fetch_add(1, Ordering::Relaxed));
            requests.insert(key.clone(), ask.request);
            parked.waiting.push((key, ask.reply));
        }
        let state = format!("{STATE_PREFIX}{:032x}", rand::random::<u128>());
        let result = serde_json::json!({
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": state,
        });
        let result = serde_json::from_value(result).map_err(|e| {
            ErrorData::internal_error(format!("cannot write the input request: {e}"), None)
        });
        self.park(state, parked);
        Some(result.map(CallToolResponse::InputRequired))
    }

    fn park(&self, state: String, parked: Parked) {
        let mut all = self.parked.lock().expect("not poisoned");
        all.retain(|_, p| {
            let keep = p.since.elapsed() < PARKED_FOR;
            if !keep {
                p.cancel();
            }
            keep
        });
        let mut parked = parked;
        parked.since = Instant::now();
        all.insert(state, parked);
    }

    /// Cancel every parked call (the gateway is stopping).
    pub fn cancel_all(&self) {
        for (_, mut parked) in self.parked.lock().expect("not poisoned").drain() {
            parked.cancel();
        }
    }
}
