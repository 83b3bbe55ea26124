"""``python -m sokoul_appliance.torrent.engine --state DIR --socket PATH --downloads DIR``"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import faulthandler
import logging
import os
import signal
from pathlib import Path

from sokoul_appliance.torrent.engine.lt_session import AlertPump, LtSession, SessionOptions
from sokoul_appliance.torrent.engine.resume import ResumeStore
from sokoul_appliance.torrent.engine.server import Engine

PR_SET_PDEATHSIG = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sokoul-torrent-engine", description=__doc__)
    p.add_argument("--state", type=Path, required=True, help="resume data lives here")
    p.add_argument("--socket", type=Path, required=True, help="Unix socket to serve on")
    p.add_argument("--downloads", type=Path, required=True, help="default save path")
    p.add_argument("--listen-interface", default="0.0.0.0")
    p.add_argument("--listen-port", type=int, default=6881)
    for flag in ("dht", "lsd", "upnp", "natpmp"):
        p.add_argument(f"--{flag}", action="store_true", help=f"enable {flag} (off by default)")
    p.add_argument("--download-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--active-downloads", type=int, default=3, help="queue: downloading at once")
    p.add_argument("--active-seeds", type=int, default=5, help="queue: seeding at once")
    p.add_argument("--resume-interval", type=float, default=60.0, help="seconds between saves")
    p.add_argument("--resume-batch", type=int, default=32, help="save after this many pieces")
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop (saving resume data) when the process that started this one dies",
    )
    return p.parse_args(argv)


def exit_with_parent() -> bool:
    """Ask the kernel for SIGTERM when our parent (the supervisor) dies, even by kill -9, so
    the engine saves its resume data and ends instead of living on as an orphan. Returns False
    when the parent is already gone."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return os.getppid() == parent and parent != 1


async def run(args: argparse.Namespace) -> None:
    options = SessionOptions(
        listen_interface=args.listen_interface,
        listen_port=args.listen_port,
        dht=args.dht,
        lsd=args.lsd,
        upnp=args.upnp,
        natpmp=args.natpmp,
        download_limit=args.download_limit,
        upload_limit=args.upload_limit,
        active_downloads=args.active_downloads,
        active_seeds=args.active_seeds,
    )
    session = LtSession(options)
    engine = Engine(
        session,
        ResumeStore(args.state / "resume"),
        args.downloads,
        resume_interval=args.resume_interval,
        resume_batch=args.resume_batch,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.request_stop)
    if args.exit_with_parent and not exit_with_parent():
        engine.request_stop()
    engine.attach(loop)
    pump = AlertPump(session, engine.deliver)
    pump.start()
    try:
        await engine.serve(args.socket)
    finally:
        pump.stop()


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash inside libtorrent leaves a Python traceback in the log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    args.state.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
