//! The open-files limit: raised to the hard limit at start; a run needing more sockets than it allows is
//! refused before anything starts.

/// File descriptors kept for everything but device sockets (runtime, server, stdio, report files).
pub const RESERVED_FDS: u64 = 64;

/// Raises the soft open-files limit as far as the hard limit allows and returns the new soft limit.
pub fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft),
    }
}

/// Checks that `sockets` device sockets fit under `limit`; the error is the user-facing sentence.
pub fn check(sockets: u64, extra: u64, limit: u64) -> Result<(), (u64, u64)> {
    let needed = sockets + RESERVED_FDS + extra;
    if needed > limit {
        Err((needed, limit))
    } else {
        Ok(())
    }
}

/// How many local ports the kernel hands out to sockets bound to port 0 (`ip_local_port_range`), if known.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    parse_port_range(&text)
}

fn parse_port_range(text: &str) -> Option<u64> {
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    (hi >= lo).then(|| hi - lo + 1)
}

/// Checks that `devices` sockets spread over `addresses` source addresses (0 = the unspecified address)
/// fit in `ports` ephemeral ports each; the error gives devices per address.
pub fn check_ports(devices: u64, addresses: usize, ports: u64) -> Result<(), u64> {
    let per = devices.div_ceil(addresses.max(1) as u64);
    if per > ports {
        Err(per)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_and_per_address_budget() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28_232));
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(check_ports(19_000, 0, 28_232), Ok(()));
        assert_eq!(check_ports(40_000, 0, 28_232), Err(40_000));
        assert_eq!(check_ports(40_000, 2, 28_232), Ok(()));
        assert_eq!(check_ports(60_000, 2, 28_232), Err(30_000));
    }

    #[test]
    fn refuses_past_the_limit() {
        assert!(check(1000, 1, 20000).is_ok());
        assert_eq!(check(19_990, 1, 20000), Err((20_055, 20000)));
    }
}
