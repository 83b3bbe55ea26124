"""Command line: `python -m sokoul_appliance [--root D] [--board N] [--state D] [--listen A]`
runs the supervisor; `python -m sokoul_appliance discover --root D [--json]` prints the
hardware it finds."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from sokoul_appliance import logbook
from sokoul_appliance.app import Supervisor, SupervisorConfig, parse_listen
from sokoul_appliance.host import Host
from sokoul_appliance.store.database import StoreError


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m sokoul_appliance", description=__doc__)
    p.add_argument(
        "--root",
        type=Path,
        default=Path(env("SOKOUL_ROOT", "/")),
        help="host root holding /sys /proc /dev /etc (a fixture tree in dev mode)",
    )
    p.add_argument(
        "--board",
        default=env("SOKOUL_BOARD"),
        help="board profile name (default: /etc/sokoul/board under --root)",
    )
    p.add_argument(
        "--state",
        type=Path,
        default=Path(env("SOKOUL_STATE", "/var/lib/sokoul")),
        help="the supervisor's state directory (database, first-boot record)",
    )
    p.add_argument(
        "--listen",
        action="append",
        default=None,
        help="HOST:PORT to serve on; ':PORT' means every address (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["discover"]:
        from sokoul_appliance.board.cli import main as discover_main

        return discover_main(argv[1:])
    args = _parser().parse_args(argv)
    logs = logbook.configure(logging.INFO)
    listen = args.listen or os.environ.get("SOKOUL_LISTEN", "127.0.0.1:8080").split()
    try:
        endpoints = [parse_listen(item) for item in listen]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    board = args.board
    root: Path = args.root
    if board is None:
        board = (Host(root).read_text("/etc/sokoul/board") or "unknown").strip()
    args.state.mkdir(parents=True, exist_ok=True)
    config = SupervisorConfig(root=root, board=board, state=args.state, listen=tuple(endpoints))
    try:
        asyncio.run(Supervisor(config, logs=logs).run())
    except StoreError as e:
        logging.getLogger("sokoul.supervisor").critical("%s", e)
        return 1
    return 0
