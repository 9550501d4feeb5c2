#!/usr/bin/env python3
"""CoAP load from aiocoap (PyPI), the tool a Python user would reach for: ci/bench.sh, issue #5 item c.

Many concurrent clients: `--clients` client contexts (each its own UDP socket), each running `--per-client`
closed-loop workers that POST a small JSON body (CON, Content-Format application/json) and wait for the
response. Bounded by `--secs` and by `--max` requests in all. Prints one JSON line: requests, ok, errors,
requests/s, p50/p99 latency in microseconds.

    python3 ci/bench/aiocoap_load.py --uri coap://127.0.0.1:5683 --secs 10 --clients 64 --per-client 4
"""

import argparse
import asyncio
import json
import time

import aiocoap


async def worker(ctx, base, index, deadline, state, latencies):
    path = f"{base}/api/v1/dev-{index:05}/telemetry"
    seq = 0
    while time.monotonic() < deadline and state["sent"] < state["max"]:
        seq += 1
        state["sent"] += 1
        payload = json.dumps({"temperature": 21, "seq": seq}).encode()
        msg = aiocoap.Message(code=aiocoap.POST, uri=path, payload=payload,
                              content_format=50)
        t0 = time.perf_counter()
        try:
            resp = await asyncio.wait_for(ctx.request(msg).response, timeout=10)
        except Exception:  # timeouts and transport errors alike count as errors
            state["errors"] += 1
            continue
        if resp.code.is_successful():
            state["ok"] += 1
            latencies.append(time.perf_counter() - t0)
        else:
            state["errors"] += 1


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", default="coap://127.0.0.1:5683")
    ap.add_argument("--secs", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--max", type=int, default=10_000_000)
    a = ap.parse_args()
    if not 0 < a.secs <= 600:
        ap.error("--secs must be in (0, 600]")
    contexts = [await aiocoap.Context.create_client_context() for _ in range(a.clients)]
    state = {"sent": 0, "ok": 0, "errors": 0, "max": a.max}
    latencies = []
    t0 = time.monotonic()
    deadline = t0 + a.secs
    tasks = [
        asyncio.create_task(worker(ctx, a.uri, c * a.per_client + w, deadline, state, latencies))
        for c, ctx in enumerate(contexts)
        for w in range(a.per_client)
    ]
    await asyncio.wait(tasks, timeout=a.secs + 15)
    wall = time.monotonic() - t0
    for t in tasks:
        t.cancel()
    for ctx in contexts:
        await ctx.shutdown()
    latencies.sort()

    def q(x):
        return round(latencies[min(len(latencies) - 1, int(x * len(latencies)))] * 1e6) if latencies else 0

    print(json.dumps({
        "clients": a.clients, "per_client": a.per_client, "secs": round(wall, 3),
        "sent": state["sent"], "ok": state["ok"], "errors": state["errors"],
        "rps": round(state["ok"] / wall, 1), "p50_us": q(0.5), "p99_us": q(0.99),
    }))


if __name__ == "__main__":
    asyncio.run(main())
