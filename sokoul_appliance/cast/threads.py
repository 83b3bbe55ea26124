"""Where pychromecast's blocking calls run: one daemon thread per call.

A ThreadPoolExecutor's workers are joined when the interpreter exits, so a call stuck in one of
pychromecast's own waits (its device-status HTTPS request has a 30 s timeout) would hold up the
supervisor's exit after the event loop gave up on it. Daemon threads never do; every call is
still bounded by ``asyncio.wait_for`` on the loop side and by pychromecast's timeouts here.
Casting makes a handful of calls per user action, so a thread per call costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonThreads(Executor):
    def __init__(self, name: str = "cast") -> None:
        self._name = name
        self._closed = False
        self._lock = threading.Lock()
        self.running = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._closed:
            raise RuntimeError("cannot run new calls after shutdown")
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            with self._lock:
                self.running += 1
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:  # handed to the caller through the future
                future.set_exception(e)
            finally:
                with self._lock:
                    self.running -= 1

        threading.Thread(target=run, name=f"{self._name}-call", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
