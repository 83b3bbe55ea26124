#!/usr/bin/env python3
"""Panel API load: 50 concurrent logged-in clients against a real supervisor process.

  .venv/bin/python bench/panel.py [--clients 50] [--seconds 30] [--rate 10]

Starts the supervisor on a free 127.0.0.1 port against the simulated Orange Pi 6 Plus (setup
completed from a preseed record, as on a preseeded appliance), logs in one session per client,
then runs two phases over the panel's GET routes (overview, system, network, storage, settings,
logs, session):

1. paced: each client sends ``--rate`` requests per second on a fixed schedule for
   ``--seconds`` (open loop: latency counts from the scheduled send time, so a stalled server
   cannot hide queueing — no coordinated omission). 50 clients x 10/s is ~100x what 50 open
   panels really poll. The targets (p99 <= 10 ms) are judged on this phase.
2. saturation: each client sends its next request as soon as the previous answer arrives
   (closed loop) for 10 s: the most the supervisor answers per second on this machine, and
   the latency that queueing 50 requests deep costs.

Prints p50/p90/p99/max, the supervisor's RSS when idle and its peak under load (VmHWM).
The client runs in this process (same 2 cores as the server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sokoul_appliance.passwords import hash_password  # noqa: E402
from tests.integration.supervisor_proc import SupervisorProcess  # noqa: E402

ROUTES = [
    "/api/overview",
    "/api/system",
    "/api/network",
    "/api/storage",
    "/api/settings",
    "/api/logs?lines=50",
    "/api/session",
]
PASSWORD = "bench password 1"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing for pid {pid}")


async def logged_in(base: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(limit=1),
    )
    async with http.get(base + "/api/session") as r:
        csrf = (await r.json())["csrf_token"]
    async with http.post(
        base + "/api/login",
        json={"username": "admin", "password": PASSWORD},
        headers={"X-CSRF-Token": csrf},
    ) as r:
        if r.status != 200:
            raise RuntimeError(f"login failed: {r.status} {await r.text()}")
    return http


async def paced_client(
    http: aiohttp.ClientSession, base: str, rate: float, until: float, offset: int
) -> list[tuple[str, float]]:
    interval = 1.0 / rate
    lat: list[tuple[str, float]] = []
    t0 = time.perf_counter() + (offset % 50) * interval / 50  # spread the clients
    k = 0
    while True:
        scheduled = t0 + k * interval
        if scheduled >= until:
            return lat
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        route = ROUTES[(k + offset) % len(ROUTES)]
        async with http.get(base + route) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"{r.url}: {r.status}")
        lat.append((route, time.perf_counter() - scheduled))
        k += 1


async def closed_client(
    http: aiohttp.ClientSession, base: str, until: float, offset: int
) -> list[float]:
    lat: list[float] = []
    k = 0
    while time.perf_counter() < until:
        start = time.perf_counter()
        async with http.get(base + ROUTES[(k + offset) % len(ROUTES)]) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"{r.url}: {r.status}")
        lat.append(time.perf_counter() - start)
        k += 1
    return lat


def summary(lat: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in lat)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"n": len(ms), "p50": q[49], "p90": q[89], "p99": q[98], "max": ms[-1]}


async def watch_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        await asyncio.sleep(0.25)


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="sokoul-bench-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        (state / "preseed.json").write_text(
            json.dumps({"admin_password_hash": hash_password(PASSWORD)})
        )
        sv = SupervisorProcess(state).start()
        assert sv.proc is not None
        pid = sv.proc.pid
        clients: list[aiohttp.ClientSession] = []
        try:
            for _ in range(args.clients):
                clients.append(await logged_in(sv.url))
            await asyncio.sleep(5)
            idle_rss = rss_kib(pid)

            stop, peak = asyncio.Event(), [0]
            watcher = asyncio.create_task(watch_rss(pid, stop, peak))
            until = time.perf_counter() + args.seconds
            paced = await asyncio.gather(
                *(paced_client(h, sv.url, args.rate, until, i) for i, h in enumerate(clients))
            )
            until = time.perf_counter() + args.saturation_seconds
            closed = await asyncio.gather(
                *(closed_client(h, sv.url, until, i) for i, h in enumerate(clients))
            )
            stop.set()
            await watcher
            hwm = rss_kib(pid, "VmHWM")
        finally:
            for h in clients:
                await h.close()
            sv.stop()

    p = summary([x for lat in paced for _, x in lat])
    by_route = {
        route: summary([x for lat in paced for r, x in lat if r == route]) for route in ROUTES
    }
    c = summary([x for lat in closed for x in lat])
    print(
        f"# bench/panel.py  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"routes: {', '.join(ROUTES)}")
    print("| phase | clients | requests | req/s | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| paced {args.rate:g}/s per client, {args.seconds} s | {args.clients} | {p['n']} | "
        f"{p['n'] / args.seconds:.0f} | {p['p50']:.2f} | {p['p90']:.2f} | {p['p99']:.2f} | "
        f"{p['max']:.1f} |"
    )
    print(
        f"| saturation (closed loop), {args.saturation_seconds} s | {args.clients} | {c['n']} | "
        f"{c['n'] / args.saturation_seconds:.0f} | {c['p50']:.2f} | {c['p90']:.2f} | "
        f"{c['p99']:.2f} | {c['max']:.1f} |"
    )
    for route, rs in by_route.items():
        print(f"  paced {route}: p50 {rs['p50']:.2f} ms, p99 {rs['p99']:.2f} ms")
    print(
        f"supervisor RSS: idle {idle_rss / 1024:.1f} MiB ({idle_rss * 1024 / 1e6:.1f} MB), "
        f"peak under load "
        f"{max(peak[0], hwm) / 1024:.1f} MiB"
    )
    ok_p99 = p["p99"] <= 10.0
    ok_rss = idle_rss * 1024 <= 60e6  # the target is 60 MB (10^6 bytes), RSS is in KiB
    print(
        f"targets: p99 <= 10 ms (paced): {'pass' if ok_p99 else 'FAIL'}; "
        f"idle RSS <= 60 MB: {'pass' if ok_rss else 'FAIL'}"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=float, default=10.0, help="requests/s per client (paced)")
    ap.add_argument("--saturation-seconds", type=int, default=10)
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
