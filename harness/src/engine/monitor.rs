//! The generator watching itself: its own CPU, second by second, and the host's UDP drop counters, so a
//! report can say when the limit was the generator's machine rather than the server.
//!
//! Reading the counters is I/O (`getrusage`, `/proc/net/snmp`); what they mean is pure arithmetic over
//! samples ([`summarize`], [`parse_snmp_udp`]) and tested as such. The sampler is a plain thread, not a
//! task, so a saturated async runtime cannot delay it into reporting less CPU than was used.

use crate::metrics::records::{GeneratorStats, KernelUdp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// CPU time the process had used at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuSample {
    pub at: Instant,
    pub user: Duration,
    pub system: Duration,
}

/// This process's CPU time so far (all threads).
pub fn cpu_now() -> CpuSample {
    // SAFETY: getrusage writes a plain-data struct we own; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    CpuSample {
        at: Instant::now(),
        user: tv(ru.ru_utime),
        system: tv(ru.ru_stime),
    }
}

/// Peak resident memory of this process so far, in KiB (`ru_maxrss`).
pub fn max_rss_kib() -> u64 {
    // SAFETY: as in `cpu_now`.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    ru.ru_maxrss.max(0) as u64
}

/// Host-wide UDP counters from the text of `/proc/net/snmp`; `None` when the text has no `Udp:` pair.
pub fn parse_snmp_udp(text: &str) -> Option<KernelUdp> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let values: Vec<u64> = lines
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let get = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get(i).copied())
            .unwrap_or(0)
    };
    Some(KernelUdp {
        in_datagrams: get("InDatagrams"),
        in_errors: get("InErrors"),
        rcvbuf_errors: get("RcvbufErrors"),
        sndbuf_errors: get("SndbufErrors"),
    })
}

fn read_udp() -> Option<KernelUdp> {
    parse_snmp_udp(&std::fs::read_to_string("/proc/net/snmp").ok()?)
}

/// Counter growth from `a` to `b` (counters that went backwards count as zero).
fn udp_delta(a: &KernelUdp, b: &KernelUdp) -> KernelUdp {
    KernelUdp {
        in_datagrams: b.in_datagrams.saturating_sub(a.in_datagrams),
        in_errors: b.in_errors.saturating_sub(a.in_errors),
        rcvbuf_errors: b.rcvbuf_errors.saturating_sub(a.rcvbuf_errors),
        sndbuf_errors: b.sndbuf_errors.saturating_sub(a.sndbuf_errors),
    }
}

/// Cores busy between consecutive samples, one figure per interval.
pub fn busy_series(samples: &[CpuSample]) -> Vec<f64> {
    samples
        .windows(2)
        .filter_map(|w| {
            let wall = w[1].at.duration_since(w[0].at).as_secs_f64();
            let cpu = (w[1].user + w[1].system)
                .saturating_sub(w[0].user + w[0].system)
                .as_secs_f64();
            (wall > 0.0).then(|| cpu / wall)
        })
        .collect()
}

/// The generator's figures from its CPU samples (first and last bound the run) and the UDP counters.
pub fn summarize(
    samples: &[CpuSample],
    cores: usize,
    embedded_server: bool,
    udp: Option<KernelUdp>,
    max_rss_kib: u64,
) -> GeneratorStats {
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => {
            let now = cpu_now();
            (now, now)
        }
    };
    let user = last.user.saturating_sub(first.user).as_secs_f64();
    let system = last.system.saturating_sub(first.system).as_secs_f64();
    let wall = last.at.duration_since(first.at).as_secs_f64();
    let series = busy_series(samples);
    let peak = series.iter().copied().fold(0.0, f64::max);
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    GeneratorStats {
        cores: cores as u32,
        cpu_user_s: r2(user),
        cpu_system_s: r2(system),
        cpu_busy_mean: if wall > 0.0 {
            r2((user + system) / wall)
        } else {
            0.0
        },
        cpu_busy_peak: r2(peak),
        cpu_busy_series: series.into_iter().map(r2).collect(),
        max_rss_kib,
        includes_embedded_server: embedded_server,
        kernel_udp: udp,
    }
}

/// Samples this process's CPU once a second on its own thread until stopped.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<CpuSample>>>,
    udp_before: Option<KernelUdp>,
    embedded_server: bool,
}

impl Monitor {
    pub fn start(embedded_server: bool) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let udp_before = read_udp();
        let first = cpu_now();
        let thread = std::thread::Builder::new()
            .name("coap-harness-monitor".into())
            .spawn(move || {
                let mut samples = vec![first];
                let mut next = first.at + Duration::from_secs(1);
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now >= next {
                        samples.push(cpu_now());
                        next += Duration::from_secs(1);
                    } else {
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    }
                }
                samples.push(cpu_now());
                samples
            })
            .ok();
        Monitor {
            stop,
            thread,
            udp_before,
            embedded_server,
        }
    }

    /// Stops sampling and sums up.
    pub fn finish(mut self) -> GeneratorStats {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let udp = match (self.udp_before, read_udp()) {
            (Some(a), Some(b)) => Some(udp_delta(&a, &b)),
            _ => None,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        summarize(&samples, cores, self.embedded_server, udp, max_rss_kib())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
        Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
        Udp: 3020735 11095 520 3035969 519 3 0 0 0\n\
        UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
        UdpLite: 0 0 0 0 0 0\n";

    #[test]
    fn parses_udp_counters_by_name() {
        let u = parse_snmp_udp(SNMP).unwrap();
        assert_eq!(u.in_datagrams, 3_020_735);
        assert_eq!(u.in_errors, 520);
        assert_eq!(u.rcvbuf_errors, 519);
        assert_eq!(u.sndbuf_errors, 3);
        assert_eq!(parse_snmp_udp("Ip: a\nIp: 1\n"), None);
    }

    #[test]
    fn cpu_busy_is_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        let s = |secs: u64, user_ms: u64, sys_ms: u64| CpuSample {
            at: t0 + Duration::from_secs(secs),
            user: Duration::from_millis(user_ms),
            system: Duration::from_millis(sys_ms),
        };
        // 1.5 cores busy in the first second, 0.5 in the second.
        let samples = [s(0, 0, 0), s(1, 1000, 500), s(2, 1300, 700)];
        assert_eq!(busy_series(&samples), vec![1.5, 0.5]);
        let g = summarize(&samples, 2, true, None, 1234);
        assert_eq!(g.cpu_user_s, 1.3);
        assert_eq!(g.cpu_system_s, 0.7);
        assert_eq!(g.cpu_busy_mean, 1.0);
        assert_eq!(g.cpu_busy_peak, 1.5);
        assert_eq!(g.cores, 2);
        assert_eq!(g.max_rss_kib, 1234);
    }

    #[test]
    fn sampler_sees_cpu_burnt_on_another_thread() {
        let m = Monitor::start(false);
        // Spin on another thread until the process has used 300 ms more CPU (by CPU time, not wall time,
        // so a busy machine cannot make the test flaky).
        let burn = std::thread::spawn(|| {
            let start = cpu_now();
            let used = |s: CpuSample| s.user + s.system;
            let mut x = 0u64;
            while used(cpu_now()) < used(start) + Duration::from_millis(300) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            }
            x
        });
        let _ = burn.join();
        let g = m.finish();
        assert!(g.cpu_user_s + g.cpu_system_s >= 0.29, "{g:?}");
        assert!(g.max_rss_kib > 0);
    }
}
