#!/usr/bin/env python3
"""Runs one command and records what it cost, for ci/bench.sh: wall time, user and system CPU and peak
resident memory (ru_maxrss, the process's VmHWM) of the child from wait4, its exit code, and the command.

    python3 ci/bench/measure.py OUT.json --timeout 120 -- CMD ARGS...

The child's output goes where this script's goes. A child still running after --timeout seconds is sent
SIGTERM, then SIGKILL 5 s later; the record then says timed_out.
"""
import json
import os
import signal
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    if len(args) < 3 or "--" not in args:
        sys.exit("usage: measure.py OUT.json [--timeout SECS] -- CMD ARGS...")
    split = args.index("--")
    opts, cmd = args[:split], args[split + 1:]
    out, timeout = opts[0], 600.0
    if len(opts) == 3 and opts[1] == "--timeout":
        timeout = float(opts[2])
    t0 = time.monotonic()
    child = subprocess.Popen(cmd)
    timed_out = False
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline and not timed_out:
            timed_out = True
            child.send_signal(signal.SIGTERM)
            deadline += 5
        elif timed_out and time.monotonic() > deadline:
            child.kill()
        time.sleep(0.05)
    wall = time.monotonic() - t0
    rec = {
        "cmd": cmd,
        "rc": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "wall_s": round(wall, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "maxrss_kib": ru.ru_maxrss,
    }
    with open(out, "w") as f:
        json.dump(rec, f)
    sys.exit(0 if rec["rc"] in (0, 1) else rec["rc"])


if __name__ == "__main__":
    main()
