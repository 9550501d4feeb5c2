//! Fault injection between the devices and the target: a UDP proxy inside the harness that loses,
//! duplicates, reorders and delays datagrams, per direction, and can change a device's source port mid-run
//! (NAT rebinding). [`model`] decides what happens to each datagram, sans-IO, seeded and deterministic;
//! [`proxy`] is the thin tokio driver that applies the decisions to real sockets.

pub mod model;
pub mod proxy;

pub use model::{Direction, FaultModel, FaultStats};
pub use proxy::{FaultProxy, ProxyStats};

use std::time::Duration;

/// A scenario's `faults:`: what each direction suffers, and NAT rebinding.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Datagrams from devices to the target.
    pub to_target: Direction,
    /// Datagrams from the target to devices.
    pub to_devices: Direction,
    /// Each device's source port (as the target sees it) changes this often; `None`: never.
    pub rebind_every: Option<Duration>,
    /// Seeds the fault decisions (the scenario's seed unless `faults.seed` says otherwise).
    pub seed: u64,
}

impl FaultPlan {
    /// One line for the report: what was asked for.
    pub fn describe(&self) -> String {
        let mut s = if self.to_target == self.to_devices {
            format!("both ways {}", self.to_target)
        } else {
            format!(
                "to target {}; to devices {}",
                self.to_target, self.to_devices
            )
        };
        if let Some(r) = self.rebind_every {
            s.push_str(&format!(
                "; source ports rebound every {}",
                humantime::format_duration(r)
            ));
        }
        s
    }
}
