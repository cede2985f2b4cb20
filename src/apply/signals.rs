//! The signals that stop an apply (SIGINT, SIGTERM, SIGHUP), from the process or, in
//! tests, from a channel; SIGINT is left to the work while it handles it.

use crate::error::ExitStatus;
use crate::session::EndReason;

/// A signal that ends an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    HangUp,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::HangUp => "SIGHUP",
        }
    }

    pub fn exit_status(self) -> ExitStatus {
        match self {
            Signal::Interrupt => ExitStatus::Interrupted,
            Signal::Terminate => ExitStatus::Terminated,
            Signal::HangUp => ExitStatus::HungUp,
        }
    }

    pub fn end_reason(self) -> EndReason {
        match self {
            Signal::Interrupt => EndReason::Interrupt,
            Signal::Terminate => EndReason::Terminate,
            Signal::HangUp => EndReason::HangUp,
        }
    }
}

/// Where the signals that stop an apply come from.
pub enum SignalSource {
    /// SIGINT, SIGTERM and SIGHUP of this process.
    Process,
    /// Signals sent on a channel (tests).
    Channel(std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>>),
}

impl SignalSource {
    /// A source fed by the returned sender.
    pub fn channel() -> (SignalSource, tokio::sync::mpsc::UnboundedSender<Signal>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        (
            SignalSource::Channel(std::sync::Mutex::new(Some(receiver))),
            sender,
        )
    }
}

enum Listener {
    Process {
        interrupt: tokio::signal::unix::Signal,
        terminate: tokio::signal::unix::Signal,
        hang_up: tokio::signal::unix::Signal,
    },
    Channel(Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>),
}

/// Listeners for SIGINT, SIGTERM and SIGHUP.
pub(super) struct Signals {
    /// While set, SIGINT is not ours.
    pub(super) pass_interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    listener: Listener,
}

impl Signals {
    pub(super) fn new(source: &SignalSource) -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let listener = match source {
            SignalSource::Process => Listener::Process {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                hang_up: signal(SignalKind::hangup())?,
            },
            SignalSource::Channel(receiver) => {
                Listener::Channel(receiver.lock().ok().and_then(|mut r| r.take()))
            }
        };
        Ok(Signals {
            pass_interrupt: None,
            listener,
        })
    }

    pub(super) async fn next(&mut self) -> Signal {
        loop {
            let signal = match &mut self.listener {
                Listener::Process {
                    interrupt,
                    terminate,
                    hang_up,
                } => tokio::select! {
                    _ = interrupt.recv() => Signal::Interrupt,
                    _ = terminate.recv() => Signal::Terminate,
                    _ = hang_up.recv() => Signal::HangUp,
                },
                Listener::Channel(receiver) => match receiver.as_mut() {
                    Some(receiver) => match receiver.recv().await {
                        Some(signal) => signal,
                        None => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                },
            };
            let passed = self
                .pass_interrupt
                .as_ref()
                .is_some_and(|flag| flag.load(std::sync::atomic::Ordering::SeqCst));
            if signal != Signal::Interrupt || !passed {
                return signal;
            }
        }
    }
}
