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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit() {
        assert!(check(1000, 1, 20000).is_ok());
        assert_eq!(check(19_990, 1, 20000), Err((20_055, 20000)));
    }
}
