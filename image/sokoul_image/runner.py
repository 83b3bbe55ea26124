"""Running build commands: progress on stdout, full output in the stage's log file."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class BuildError(Exception):
    """A build step failed; the message names the step and where its log is."""


class Runner:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started = time.monotonic()
        log_dir.mkdir(parents=True, exist_ok=True)

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f}s] {message}", flush=True)

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log: str,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command, appending its output to ``<log_dir>/<log>.log``.

        Raises BuildError (with the tail of the log) when it fails and ``check`` is set.
        """
        args = [os.fspath(a) for a in argv]
        log_path = self.log_dir / f"{log}.log"
        full_env = {**os.environ, **(env or {})}
        with log_path.open("a") as lf:
            lf.write(f"\n$ {shlex.join(args)}\n")
            lf.flush()
            start = lf.tell()
            proc = subprocess.run(
                args,
                env=full_env,
                input=input_text,
                cwd=cwd,
                stdout=lf,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
        with log_path.open(errors="replace") as lf:
            lf.seek(start)
            out = lf.read()
        result = subprocess.CompletedProcess(args, proc.returncode, out, None)
        if check and proc.returncode != 0:
            tail = "\n".join(out.strip().splitlines()[-25:])
            raise BuildError(
                f"command failed (exit {proc.returncode}): {shlex.join(args)}\n"
                f"--- last lines (full log: {log_path}) ---\n{tail}"
            )
        return result
