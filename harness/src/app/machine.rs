//! What machine the generator ran on, for the report's metadata: a run's figures mean little without it.
//! Reading is I/O (`/proc`, `uname`); the parsers are pure and tested.

use crate::report::model::MachineInfo;

/// The first `model name` in `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `MemTotal` in `/proc/meminfo` text, in MiB.
fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn uname() -> (String, String) {
    // SAFETY: uname fills a plain-data struct we own; the fields are NUL-terminated C strings.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return (String::new(), String::new());
        }
        let field = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        (
            field(&u.nodename),
            format!(
                "{} {} {}",
                field(&u.sysname),
                field(&u.release),
                field(&u.machine)
            ),
        )
    }
}

/// This machine, as far as it can be read.
pub fn describe() -> MachineInfo {
    let (hostname, os) = uname();
    MachineInfo {
        hostname,
        os,
        cpu: std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| cpu_model(&t)),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as u32,
        memory_mib: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| mem_total_mib(&t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let cpu = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n";
        assert_eq!(cpu_model(cpu).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        let mem = "MemTotal:       24641536 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_mib(mem), Some(24_064));
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn describes_this_machine() {
        let m = describe();
        assert!(m.cores >= 1);
        assert!(m.os.starts_with("Linux"), "{}", m.os);
        assert!(!m.hostname.is_empty());
    }
}
