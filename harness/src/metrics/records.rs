//! Plain records the engine measures and the report carries as they are: the generator's own resource use and
//! the conformance cases' results. They live here, below both, so the engine never imports `report`.

use serde::{Deserialize, Serialize};

/// The generator's own resource use over the load phases, so a saturated client is not mistaken for a slow
/// server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct GeneratorStats {
    /// CPUs this process could use.
    pub cores: u32,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    /// Mean cores busy (CPU seconds per wall second); `cores` means every core was busy.
    pub cpu_busy_mean: f64,
    /// The busiest second's cores busy.
    pub cpu_busy_peak: f64,
    /// Cores busy, one figure per second of the load phases.
    #[serde(default)]
    pub cpu_busy_series: Vec<f64>,
    /// Peak resident memory of the process, KiB.
    pub max_rss_kib: u64,
    /// The embedded target server ran in this process, so these figures include its work.
    pub includes_embedded_server: bool,
    /// Host-wide UDP counters' growth during the load phases (every process on the host counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_udp: Option<KernelUdp>,
}

impl GeneratorStats {
    /// One line for people: cores busy, CPU time, memory, kernel drops.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{:.2} of {} cores busy on average, {:.2} in the busiest second; {:.1} s user + {:.1} s system CPU; \
             {} MB peak resident{}",
            self.cpu_busy_mean,
            self.cores,
            self.cpu_busy_peak,
            self.cpu_user_s,
            self.cpu_system_s,
            self.max_rss_kib / 1024,
            if self.includes_embedded_server {
                " (embedded server included)"
            } else {
                ""
            }
        );
        if let Some(u) = &self.kernel_udp {
            s.push_str(&format!(
                "; host UDP drops: {} receive-buffer, {} send-buffer",
                u.rcvbuf_errors, u.sndbuf_errors
            ));
        }
        s
    }
}

/// Growth of the host's UDP counters (`/proc/net/snmp`).
#[derive(
    Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct KernelUdp {
    pub in_datagrams: u64,
    pub in_errors: u64,
    /// Datagrams dropped because a socket's receive buffer was full.
    pub rcvbuf_errors: u64,
    /// Datagrams not sent because a socket's send buffer was full.
    pub sndbuf_errors: u64,
}

/// One conformance case.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ConformanceResult {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    /// What was seen (for a failure: each expectation that did not hold, with what was observed).
    pub observed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub notifications: u64,
    /// Why the case was not run (it needs the embedded server to push updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}
