//! Stop signals: SIGINT (Ctrl-C), SIGTERM (`timeout`, `docker stop`, Kubernetes, CI job cancellation,
//! systemd) and SIGHUP (a dropped SSH session) are handled alike. The first one asks the run to stop (devices
//! stop, in-flight requests count as `unfinished`, every output is written marked interrupted, exit 1); a
//! second one exits at once with 128 + the signal's number, the shell's convention for "killed by".

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A stop signal that was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// SIGINT, Ctrl-C.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP.
    Hangup,
}

impl Stop {
    /// The signal's name as `kill -l` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::Hangup => "SIGHUP",
        }
    }

    /// The exit code of a process killed by this signal (128 + its number).
    pub fn exit_code(self) -> i32 {
        128 + match self {
            Stop::Interrupt => libc::SIGINT,
            Stop::Terminate => libc::SIGTERM,
            Stop::Hangup => libc::SIGHUP,
        }
    }
}

/// The three stop signals, listened to from the moment this is made (their default action, ending the
/// process at once, is replaced for the rest of its life).
pub struct Listener {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Listener {
    /// Installs the handlers. Needs a tokio runtime with I/O enabled.
    pub fn install() -> std::io::Result<Self> {
        Ok(Listener {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next stop signal.
    pub async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.int.recv() => Stop::Interrupt,
            _ = self.term.recv() => Stop::Terminate,
            _ = self.hup.recv() => Stop::Hangup,
        }
    }
}

/// Cancels `cancel` on the first stop signal (saying so on stderr) and exits the process on the second.
/// If the handlers cannot be installed the run goes on with the default actions, and says so.
pub fn stop_run_on_signal(cancel: CancellationToken) -> JoinHandle<()> {
    let listener = Listener::install();
    tokio::spawn(async move {
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                eprintln!("warning: cannot handle stop signals ({e}): a signal ends the run without a report");
                return;
            }
        };
        let first = listener.next().await;
        eprintln!(
            "\ninterrupted ({}): stopping devices and writing the report of what was measured; \
             a second signal exits at once",
            first.name()
        );
        cancel.cancel();
        let second = listener.next().await;
        eprintln!(
            "interrupted again ({}): exiting without writing the report",
            second.name()
        );
        std::process::exit(second.exit_code());
    })
}
