#!/usr/bin/env python3
"""Torrent engine on loopback: ours vs aria2c, the same 200 MB multi-file torrent, the same seeder.

  bench/torrent.sh [--mb 200] [--rounds 1]   (runs this file with the venv)

Generates a multi-file torrent (v1-only: aria2 speaks no v2) with a loopback HTTP tracker that
hands out the seeder's address (aria2c has no other way to be told a peer), then measures:

1. aria2c seeder -> our engine  (time to complete; time-to-first-playable-byte: add, open the
   movie as a stream, first 64 KiB read back; sha256 of every file);
2. aria2c seeder -> aria2c leecher (the reference; `--file-allocation=none`, exits when done);
3. libtorrent seeder (a second engine) -> our engine.

Ratio = aria2c time / our time for the same seeder (>= 0.9 is the issue's target), TTFPB target
<= 2 s on loopback. Every peer is 127.0.0.1; no DHT, LSD, UPnP, NAT-PMP.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import http.server
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sokoul_appliance.torrent.client import EngineClient  # noqa: E402
from sokoul_appliance.torrent.engine.lt_session import make_torrent  # noqa: E402

MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepting(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(str(path)) == 0


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


class Tracker:
    """A loopback HTTP tracker whose every announce answers with one peer: the seeder."""

    def __init__(self) -> None:
        self.seeder_port = 0
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer = socket.inet_aton("127.0.0.1") + tracker.seeder_port.to_bytes(2, "big")
                body = b"d8:intervali60e5:peers6:" + peer + b"e"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/announce"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def make_content(root: Path, mb: int) -> dict[str, int]:
    files = {
        "Bench/movie.mkv": int(mb * 0.88) * MiB + 4321,
        "Bench/extras/making-of.mkv": int(mb * 0.12) * MiB + 99,
        "Bench/movie.srt": 54321,
    }
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MiB)
                f.write(os.urandom(n))
                left -= n
    return files


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def aria2_seeder(root: Path, torrent: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [
        "aria2c", f"--dir={root}", "--enable-dht=false", "--enable-dht6=false",
        "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-ratio=0.0",
        "--bt-seed-unverified=true", f"--listen-port={port}", "--disable-ipv6",
        "--console-log-level=warn", "--summary-interval=0", str(torrent),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("aria2c seeder did not start")
        time.sleep(0.1)
    return proc


def engine(base: Path, name: str, downloads: Path, port: int, *extra: str) -> Any:
    sock = base / f"{name}.sock"
    downloads.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "sokoul_appliance.torrent.engine", "--state", str(base / name),
        "--socket", str(sock), "--downloads", str(downloads), "--listen-interface",
        "127.0.0.1", "--listen-port", str(port), *extra,
    ]  # fmt: skip
    with open(base / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while not accepting(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"engine {name} did not start")
        time.sleep(0.05)
    return proc, sock


async def ours(
    base: Path, name: str, torrent: bytes, seeder_port: int, files: dict[str, int]
) -> dict[str, float]:
    downloads = base / f"{name}-dl"
    proc, sock = engine(base, name, downloads, free_port())
    c = EngineClient(sock, timeout=30)
    try:
        t0 = time.monotonic()
        r = await c.request(
            "add", torrent=base64.b64encode(torrent).decode(), peers=[f"127.0.0.1:{seeder_port}"]
        )
        tid = r["torrent"]
        listing = await c.request("files", torrent=tid)
        movie = next(f for f in listing if f["path"] == "Bench/movie.mkv")
        await c.request("open_stream", torrent=tid, file=movie["index"])
        await c.request(
            "read", torrent=tid, file=movie["index"], offset=0, length=65536, timeout=60
        )
        ttfpb = time.monotonic() - t0
        while True:
            st = await c.request("status", torrent=tid)
            if st["progress"] >= 1.0:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
    finally:
        await c.close()
        stop(proc)
    verify(downloads, files)
    shutil.rmtree(downloads)
    return {"seconds": elapsed, "ttfpb": ttfpb}


def aria2_leecher(base: Path, torrent: Path, files: dict[str, int]) -> dict[str, float]:
    downloads = base / "aria2-dl"
    argv = [
        "aria2c", f"--dir={downloads}", "--enable-dht=false", "--enable-dht6=false",
        "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
        f"--listen-port={free_port()}", "--disable-ipv6", "--file-allocation=none",
        "--console-log-level=warn", "--summary-interval=0", "--bt-hash-check-seed=false",
        str(torrent),
    ]  # fmt: skip
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=600)
    elapsed = time.monotonic() - t0
    verify(downloads, files)
    shutil.rmtree(downloads)
    return {"seconds": elapsed}


def verify(downloads: Path, files: dict[str, int]) -> None:
    for rel in files:
        got = sha256(downloads / rel)
        if got != EXPECTED[rel]:
            raise SystemExit(f"sha256 mismatch: {rel}")


EXPECTED: dict[str, str] = {}


async def lt_seeder(base: Path, torrent: bytes, root: Path) -> tuple[Any, int]:
    port = free_port()
    proc, sock = engine(base, "seeder", root, port)
    c = EngineClient(sock, timeout=60)
    r = await c.request("add", torrent=base64.b64encode(torrent).decode())
    while (await c.request("status", torrent=r["torrent"]))["state"] != "seeding":
        await asyncio.sleep(0.2)
    await c.close()
    return proc, port


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sokoul-bench-torrent-", dir="/var/tmp"))
    try:
        root = base / "seed"
        files = make_content(root, args.mb)
        EXPECTED.update({rel: sha256(root / rel) for rel in files})
        tracker = Tracker()
        torrent = make_torrent(str(root / "Bench"), 0, v1_only=True, trackers=(tracker.url,))
        tfile = base / "bench.torrent"
        tfile.write_bytes(torrent)
        total = sum(files.values())
        rows: list[dict[str, Any]] = []
        for rnd in range(1, args.rounds + 1):
            port = free_port()
            tracker.seeder_port = port
            seeder = aria2_seeder(root, tfile, port)
            try:
                a = await ours(base, f"ours-a{rnd}", torrent, port, files)
                b = aria2_leecher(base, tfile, files)
            finally:
                stop(seeder)
            lproc, lport = await lt_seeder(base, torrent, root)
            tracker.seeder_port = lport
            try:
                c = await ours(base, f"ours-l{rnd}", torrent, lport, files)
            finally:
                stop(lproc)
            rows.append({"round": rnd, "ours_from_aria2": a, "aria2_from_aria2": b,
                         "ours_from_libtorrent": c})  # fmt: skip
            print(
                f"round {rnd}: {total / MiB:.0f} MiB | aria2c->ours {a['seconds']:.2f} s "
                f"({total / MiB / a['seconds']:.0f} MiB/s, TTFPB {a['ttfpb']:.2f} s) | "
                f"aria2c->aria2c {b['seconds']:.2f} s ({total / MiB / b['seconds']:.0f} MiB/s) | "
                f"libtorrent->ours {c['seconds']:.2f} s ({total / MiB / c['seconds']:.0f} MiB/s, "
                f"TTFPB {c['ttfpb']:.2f} s) | ratio aria2c/ours "
                f"{b['seconds'] / a['seconds']:.2f}",
                flush=True,
            )
        print(json.dumps({"mib": total / MiB, "cpu": platform.processor() or platform.machine(),
                          "nproc": os.cpu_count(), "rounds": rows}))  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
