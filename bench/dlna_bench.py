#!/usr/bin/env python3
"""DLNA MediaServer bench: ours vs minidlna on the same generated library, streaming vs nginx.

  bench/dlna.sh [--items 20000] [--pages 200] [--gib 1]      (root: network namespaces)

1. Library: one tiny valid MP4 made with ffmpeg, hard-linked ``--items`` times as
   ``Movies/Film NNNNN (YEAR)/Film NNNNN (YEAR).mp4``.
2. Scan time: our LibraryManager.scan() as the supervisor runs it, two figures: to browsable
   (walk, guessit, sidecars, one commit: the items are listed) and to fully probed (then the
   background probe pass: ffprobe per file, 2 at a time, niced); minidlna's first scan
   (minidlnad -d, until it logs the scan finished; it reads every file with libavformat in
   its own process), each on an empty database.
3. Browse latency: both servers in one namespace on a veth (SSDP stays inside it); a client
   in a second namespace sends ``--pages`` Browse BrowseDirectChildren requests of 100 objects
   (Filter *) at the same random offsets into the 20k-video container (ours: ``movies``;
   minidlna: Video/All Video), alternating servers request by request, one new connection per
   request (as TVs do). Target: our p50 and mean <= minidlna's.
4. Throughput: a ``--gib`` GiB file (read once first: both serve from the page cache)
   fetched with curl from our /stream/{id} and from nginx (sendfile on) on the same veth,
   ``--rounds`` rounds, the order swapped every round; medians compared. Target: ours >= 0.9x
   nginx.

Every process is started by PID inside namespaces this script creates, and stopped by PID;
the namespaces are deleted on exit (also on failure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.media_samples import make_video  # noqa: E402
from tests.netns import Lab, wait_until  # noqa: E402

SERVER = "10.80.0.1"
CLIENT = "10.80.0.2"
OURS_PORT, MINI_PORT, NGINX_PORT = 8201, 8200, 8080

RUNNER = r"""
import asyncio, signal, sys
from pathlib import Path
from prometheus_client import CollectorRegistry
from sokoul_appliance.bus import EventBus
from sokoul_appliance.dlna import Binding, DlnaManager
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryManager
from sokoul_appliance.store.database import Store
from sokoul_appliance.stream import StreamService

async def main(root, state, address, interface, port):
    store = Store(Path(state) / "sokoul.db")
    await store.start()
    registry, bus, host = CollectorRegistry(), EventBus(), Host(Path(root))
    lib = LibraryManager(host, store, bus, registry, roots=("/srv/media/library",), watch=False)
    result = await lib.scan()  # an unchanged library (the scan above): waits for no probe
    stream = StreamService(host, lib, registry)
    manager = DlnaManager(bus, lib, stream, registry, Path(state),
                          lambda: [Binding(address, interface, "streaming")],
                          lambda: "SOKOUL bench", http_port=int(port))
    await manager.start()
    big = (await lib.items(query="big"))[1]
    print("READY", manager.port, big[0].id if big else "-", result.seconds, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await manager.stop()
    await store.stop()

asyncio.run(main(*sys.argv[1:6]))
"""

BROWSE_CLIENT = r"""
import http.client, json, random, re, sys, time, html
targets = json.loads(sys.argv[1])  # [{"name", "host", "port", "path", "container"}]
pages, total = int(sys.argv[2]), int(sys.argv[3])

def browse(t, object_id, start, count):
    body = ('<?xml version="1.0" encoding="utf-8"?><s:Envelope '
            'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            '<u:Browse xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1">'
            f'<ObjectID>{object_id}</ObjectID><BrowseFlag>BrowseDirectChildren</BrowseFlag>'
            f'<Filter>*</Filter><StartingIndex>{start}</StartingIndex>'
            f'<RequestedCount>{count}</RequestedCount><SortCriteria></SortCriteria>'
            '</u:Browse></s:Body></s:Envelope>').encode()
    started = time.perf_counter()
    c = http.client.HTTPConnection(t["host"], t["port"], timeout=30)
    c.request("POST", t["path"], body, {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPACTION": '"urn:schemas-upnp-org:service:ContentDirectory:1#Browse"'})
    r = c.getresponse()
    data = r.read()
    c.close()
    elapsed = time.perf_counter() - started
    text = data.decode()
    assert r.status == 200, text[:500]
    returned = int(re.search(r"<NumberReturned>(\d+)<", text).group(1))
    matches = int(re.search(r"<TotalMatches>(\d+)<", text).group(1))
    return elapsed, returned, matches, text

# minidlna: find Video/All Video
for t in targets:
    if t["container"] is None:
        _, _, _, text = browse(t, "2", 0, 50)
        result = html.unescape(re.search(r"<Result>(.*)</Result>", text, re.S).group(1))
        pattern = r'<container id="([^"]+)"[^>]*><dc:title>All Video<'
        t["container"] = re.search(pattern, result).group(1)
rng = random.Random(42)
offsets = [rng.randrange(0, max(1, total - 100)) for _ in range(pages)]
for t in targets:  # warm up: caches, SQLite pages, Python code paths
    for off in offsets[:10]:
        browse(t, t["container"], off, 100)
times = {t["name"]: [] for t in targets}
sizes = {t["name"]: [] for t in targets}
totals = {}
for off in offsets:
    for t in targets:
        elapsed, returned, matches, text = browse(t, t["container"], off, 100)
        assert returned == 100, (t["name"], returned)
        times[t["name"]].append(elapsed)
        sizes[t["name"]].append(len(text))
        totals[t["name"]] = matches
out = {}
for name, ts in times.items():
    ts.sort()
    out[name] = {"p50_ms": 1000 * ts[len(ts) // 2], "p95_ms": 1000 * ts[int(len(ts) * 0.95)],
                 "mean_ms": 1000 * sum(ts) / len(ts), "requests": len(ts),
                 "total_matches": totals[name], "mean_bytes": sum(sizes[name]) // len(ts)}
print(json.dumps(out))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def generate(lib: Path, items: int, gib: float) -> Path:
    sample = make_video(lib.parent / "sample.mp4", seconds=1.0, size="160x120")
    for i in range(items):
        title = f"Film {i:05d} ({1950 + i % 70})"
        d = lib / "Movies" / title
        d.mkdir(parents=True, exist_ok=True)
        os.link(sample, d / f"{title}.mp4")
    big_dir = lib / "Big (2020)"
    big_dir.mkdir(parents=True, exist_ok=True)
    big = big_dir / "Big (2020).mp4"
    with big.open("wb") as f:  # random bytes: no compression or zero-page shortcut anywhere
        for _ in range(int(gib * 1024)):
            f.write(os.urandom(1 << 20))
    return big


async def our_scan(root: Path, state: Path) -> tuple[float, float, int]:
    """(seconds to browsable, seconds to fully probed, items added)."""
    from prometheus_client import CollectorRegistry

    from sokoul_appliance.bus import EventBus
    from sokoul_appliance.host import Host
    from sokoul_appliance.library import LibraryManager
    from sokoul_appliance.store.database import Store

    store = Store(state / "sokoul.db")
    await store.start()
    try:
        lib = LibraryManager(Host(root), store, EventBus(), CollectorRegistry(),
                             roots=("/srv/media/library",), watch=False)  # fmt: skip
        started = time.monotonic()
        result = await lib.scan(wait_probed=False)  # the supervisor's scans: probes follow
        browsable = time.monotonic() - started
        await lib.probe_pending()
        probed = time.monotonic() - started
        return browsable, probed, result.added
    finally:
        await store.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument(
        "--work",
        type=Path,
        help="keep the generated library and our scanned database here; a later run with the "
        "same --work reuses them (and the scan figure measured then) and measures the rest again",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/dlna.sh: run as root (network namespaces)", file=sys.stderr)
        return 1
    keep = args.work is not None
    work = args.work or Path(tempfile.mkdtemp(prefix="sokoul-dlna-bench.", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "items": args.items,
        "load_before": os.getloadavg()[0],
    }
    try:
        root = work / "root"
        lib = root / "srv/media/library"
        ours_state = work / "ours-state"
        scanned = work / "scan.json"
        big = lib / "Big (2020)" / "Big (2020).mp4"
        if scanned.exists():
            previous = json.loads(scanned.read_text())
            figures["scan_ours_browsable_s"] = previous.get("scan_ours_browsable_s")
            figures["scan_ours_s"] = previous["scan_ours_s"]
            figures["scan_ours_measured"] = previous["date"]
            log(f"reusing {work} (our scan measured {previous['date']})")
        else:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(ours_state, ignore_errors=True)
            log(f"generating {args.items} items + a {args.gib} GiB file in {work}")
            big = generate(lib, args.items, args.gib)
            log("our scan (browsable, then ffprobe per file, 2 at a time)")
            ours_state.mkdir()
            browsable_s, scan_s, added = asyncio.run(our_scan(root, ours_state))
            figures["scan_ours_browsable_s"] = round(browsable_s, 1)
            figures["scan_ours_s"] = round(scan_s, 1)
            scanned.write_text(json.dumps({"scan_ours_s": figures["scan_ours_s"],
                                           "scan_ours_browsable_s": round(browsable_s, 1),
                                           "date": figures["date"]}))  # fmt: skip
            log(f"  browsable {browsable_s:.1f} s, fully probed {scan_s:.1f} s, {added} items")

        with Lab() as labo:
            srv, cli = labo.namespace("dlnabench"), labo.namespace("dlnacli")
            labo.veth(srv, "bench0", cli, "eth0")
            srv.add_address("bench0", f"{SERVER}/24")
            cli.add_address("eth0", f"{CLIENT}/24")

            log("minidlna scan")
            db = work / "minidlna-db"
            shutil.rmtree(db, ignore_errors=True)
            db.mkdir()
            conf = work / "minidlna.conf"
            conf.write_text(
                f"media_dir=V,{lib}\ndb_dir={db}\nlog_dir={db}\nnetwork_interface=bench0\n"
                f"port={MINI_PORT}\nfriendly_name=minidlna-bench\ninotify=no\n"
                "notify_interval=900\n"
            )
            mlog = work / "minidlna.log"
            mlog.unlink(missing_ok=True)
            started = time.monotonic()
            labo.start(srv, ["/usr/sbin/minidlnad", "-d", "-f", str(conf),
                             "-P", str(work / "m.pid")], log=mlog)  # fmt: skip
            finished = wait_until(
                lambda: "Scanning" in (t := mlog.read_text(errors="replace"))
                and "finished" in t.split("Scanning", 1)[1],
                3600,
                0.2,
            )
            figures["scan_minidlna_s"] = round(time.monotonic() - started, 1)
            if not finished:
                raise RuntimeError("minidlna did not finish its scan within an hour")
            log(f"  {figures['scan_minidlna_s']} s")

            runner = work / "runner.py"
            runner.write_text(RUNNER)
            olog = work / "ours.log"
            olog.unlink(missing_ok=True)
            labo.start(srv, [sys.executable, str(runner), str(root), str(ours_state), SERVER,
                             "bench0", str(OURS_PORT)],
                       log=olog, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)  # fmt: skip
            if not wait_until(lambda: "READY" in olog.read_text(errors="replace"), 300, 0.2):
                raise RuntimeError(f"our server did not start: {olog.read_text()[-2000:]}")
            ready = next(ln for ln in olog.read_text().splitlines() if ln.startswith("READY"))
            big_id = ready.split()[2]
            figures["rescan_unchanged_ours_s"] = float(ready.split()[3])

            log(f"Browse: {args.pages} pages of 100, alternating")
            client = work / "browse.py"
            client.write_text(BROWSE_CLIENT)
            targets = [
                {"name": "sokoul", "host": SERVER, "port": OURS_PORT,
                 "path": "/upnp/control/ContentDirectory", "container": "movies"},
                {"name": "minidlna", "host": SERVER, "port": MINI_PORT,
                 "path": "/ctl/ContentDir", "container": None},
            ]  # fmt: skip
            done = cli.run(sys.executable, str(client), json.dumps(targets), str(args.pages),
                           str(args.items), timeout=1800, check=False)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"the Browse client failed: {done.stderr[-3000:]}")
            figures["browse"] = json.loads(done.stdout)
            log(f"  {figures['browse']}")

            log(f"throughput: {args.gib} GiB, ours vs nginx, {args.rounds} rounds")
            nginx_dir = work / "nginx"
            (nginx_dir / "logs").mkdir(parents=True, exist_ok=True)
            (nginx_dir / "nginx.conf").write_text(
                "user root;\nworker_processes 1;\npid " + str(nginx_dir / "nginx.pid") + ";\n"
                "error_log " + str(nginx_dir / "logs/error.log") + ";\n"
                "events { worker_connections 64; }\n"
                "http { access_log off; sendfile on; tcp_nopush on;\n"
                f'  server {{ listen {SERVER}:{NGINX_PORT}; root "{big.parent}";\n'
                "    types { video/mp4 mp4; } } }\n"
            )
            labo.start(srv, ["/usr/sbin/nginx", "-p", str(nginx_dir), "-c",
                             str(nginx_dir / "nginx.conf"), "-g", "daemon off;"])  # fmt: skip
            if not wait_until(
                lambda: cli.ok(
                    "curl", "-sS", "-o", "/dev/null", "-r", "0-0", f"http://{SERVER}:{NGINX_PORT}/"
                ),
                20,
                0.2,  # fmt: skip
            ):
                raise RuntimeError("nginx did not start")
            urls = {
                "sokoul": f"http://{SERVER}:{OURS_PORT}/stream/{big_id}",
                "nginx": f"http://{SERVER}:{NGINX_PORT}/{urllib.parse.quote(big.name)}",
            }
            speeds: dict[str, list[float]] = {k: [] for k in urls}
            with big.open("rb") as f:  # both read from the page cache: warm it first
                while f.read(8 << 20):
                    pass
            for n in range(args.rounds):
                order = list(urls.items()) if n % 2 == 0 else list(urls.items())[::-1]
                for name, url in order:
                    r = cli.run("curl", "-sS", "-o", "/dev/null", "-w",
                                "%{http_code} %{size_download} %{speed_download}", url,
                                timeout=600)  # fmt: skip
                    code, size, speed = r.stdout.split()
                    if code != "200" or int(size) != big.stat().st_size:
                        raise RuntimeError(f"{name}: HTTP {code}, {size} bytes")
                    speeds[name].append(float(speed) / 2**20)
            figures["throughput_mib_s"] = {
                k: {"median": round(statistics.median(v), 1), "runs": [round(x) for x in v]}
                for k, v in speeds.items()
            }
            figures["load_after"] = os.getloadavg()[0]
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    b = figures["browse"]
    t = figures["throughput_mib_s"]
    figures["ratios"] = {
        "browse_p50_ours_over_minidlna": round(b["sokoul"]["p50_ms"] / b["minidlna"]["p50_ms"], 2),
        "browse_mean_ours_over_minidlna": round(
            b["sokoul"]["mean_ms"] / b["minidlna"]["mean_ms"], 2
        ),
        "scan_ours_over_minidlna": round(figures["scan_ours_s"] / figures["scan_minidlna_s"], 2),
        "scan_browsable_ours_over_minidlna": (
            None
            if figures.get("scan_ours_browsable_s") is None
            else round(figures["scan_ours_browsable_s"] / figures["scan_minidlna_s"], 2)
        ),
        "throughput_ours_over_nginx": round(t["sokoul"]["median"] / t["nginx"]["median"], 2),
    }
    print(json.dumps(figures, indent=1))
    r = figures["ratios"]
    print(
        f"\nBrowse 100/page p50: ours {b['sokoul']['p50_ms']:.1f} ms, minidlna "
        f"{b['minidlna']['p50_ms']:.1f} ms -> {r['browse_p50_ours_over_minidlna']}x "
        f"(target <= 1.0: {'pass' if r['browse_p50_ours_over_minidlna'] <= 1.0 else 'MISS'})\n"
        f"scan: ours browsable {figures.get('scan_ours_browsable_s')} s "
        f"({r['scan_browsable_ours_over_minidlna']}x), fully probed {figures['scan_ours_s']} s "
        f"({r['scan_ours_over_minidlna']}x); minidlna {figures['scan_minidlna_s']} s "
        "(its scan probes every file in-process)\n"
        f"throughput: ours {t['sokoul']['median']} MiB/s, nginx {t['nginx']['median']} MiB/s -> "
        f"{r['throughput_ours_over_nginx']}x (target >= 0.9: "
        f"{'pass' if r['throughput_ours_over_nginx'] >= 0.9 else 'MISS'})"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
