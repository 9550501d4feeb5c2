#!/usr/bin/env bash
# Issue #15 item 1, measured over real UDP: coap-harness (client) against a separate `coap-harness serve
# --coaps` process (server), both on this machine's cores. For each offered rate, DEVICES devices start over
# a linear ramp (ci/bench/dtls-handshakes.yaml: one full ECDHE-ECDSA handshake each, then one request).
# Prints one row per rate: handshakes ok/failed, achieved rate, handshake p50/p99, client CPU per device
# (the harness process's user+system CPU over the whole run divided by handshakes ok: one handshake plus one
# request each, so an upper bound on the handshake's own cost) and server CPU per handshake (the serve
# process's CPU ticks over the run).
#
#   ci/bench/handshakes-separate.sh [BIN] [DEVICES] [RATES...]
#   e.g. ci/bench/handshakes-separate.sh target/release/coap-harness 2000 1000 2000 3000
#
# Loopback only; every run is bounded by its scenario (ramp + hold + drain) and a timeout; the server is
# stopped by its PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$ROOT/target/release/coap-harness}
DEVICES=${2:-2000}
shift $(( $# >= 2 ? 2 : $# ))
RATES=${*:-1000 2000 3000}
OUT=$(mktemp -d /tmp/hs-separate.XXXXXX)
SPID=""
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; true' EXIT
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

"$BIN" certs --out "$OUT/pki" > /dev/null
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $DEVICES devices per run, out $OUT"
echo "| offered/s | ok / failed | achieved/s | handshake p50 | p99 | client CPU per device | server CPU per handshake |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for r in $RATES; do
  port=$(free_port)
  "$BIN" serve --coap 127.0.0.1:0 --coaps "127.0.0.1:$port" --cert "$OUT/pki/server.pem" \
    --key "$OUT/pki/server.key" --any-token > "$OUT/serve-$r.log" 2>&1 &
  SPID=$!
  sleep 1
  ramp_ms=$(( DEVICES * 1000 / r ))
  sed -e "s|TARGET|coaps://127.0.0.1:$port|; s|PKI|$OUT/pki|; s|DEVICES|$DEVICES|; s|RAMP|${ramp_ms}ms|; s|HOLD|4s|g" \
    "$ROOT/ci/bench/dtls-handshakes.yaml" > "$OUT/scenario-$r.yaml"
  t0=$(ticks "$SPID")
  timeout 180 "$BIN" run "$OUT/scenario-$r.yaml" --out "$OUT/run-$r" --force -q > "$OUT/run-$r.log" 2>&1 || true
  t1=$(ticks "$SPID")
  kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; SPID=""
  python3 - "$OUT/run-$r/report.json" "$r" "$ramp_ms" "$(( t1 - t0 ))" "$hz" <<'EOF'
import json, sys
rep, r, ramp_ms, sticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
j = json.load(open(rep))
h, g = j["handshakes"], j["generator"]
ok, failed = h["ok"], h["failed"]
lat = h["latency"]
achieved = ok / ((ramp_ms + lat["max_us"] / 1000) / 1000) if ok else 0
client = (g["cpu_user_s"] + g["cpu_system_s"]) / ok * 1000 if ok else float("nan")
server = sticks / hz / ok * 1000 if ok else float("nan")
print(f"| {r:,} | {ok:,} / {failed:,} | {achieved:,.0f} | {lat['p50_us'] / 1000:.2f} ms | {lat['p99_us'] / 1000:.2f} ms "
      f"| {client:.3f} ms | {server:.3f} ms |")
EOF
done
