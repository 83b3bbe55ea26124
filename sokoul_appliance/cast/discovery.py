"""Chromecast discovery: pychromecast's CastBrowser on a zeroconf instance bound to the chosen
addresses only (``interfaces=[...]``: mDNS goes out of those interfaces and no other).

zeroconf and pychromecast run their own threads; what they find is handed to ``post`` (the
manager's ``loop.call_soon_threadsafe``). start() and stop() block: the manager calls them in
its executor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sokoul_appliance.cast.connection import DeviceInfo, load_pychromecast

log = logging.getLogger("sokoul.cast")


class _Listener:
    """pychromecast's cast listener interface (AbstractCastListener), duck-typed."""

    def __init__(self, discovery: CastDiscovery) -> None:
        self._d = discovery

    def add_cast(self, uuid: Any, service: Any) -> None:
        self._d.report(uuid)

    def update_cast(self, uuid: Any, service: Any) -> None:
        self._d.report(uuid)

    def remove_cast(self, uuid: Any, service: Any, cast_info: Any) -> None:
        self._d.on_removed(str(uuid))


class CastDiscovery:
    def __init__(
        self,
        addresses: Sequence[str],
        on_found: Callable[[DeviceInfo], None],
        on_removed: Callable[[str], None],
    ) -> None:
        if not addresses:
            raise ValueError("discovery needs at least one interface address")
        self.addresses = tuple(addresses)
        self.on_found = on_found
        self.on_removed = on_removed
        self.zc: Any = None
        self.browser: Any = None

    def report(self, uuid: Any) -> None:
        browser = self.browser
        if browser is None:
            return
        info = browser.devices.get(uuid)
        if info is None or not info.host:
            return
        self.on_found(
            DeviceInfo(
                uuid=str(uuid),
                name=info.friendly_name or "Chromecast",
                model=info.model_name or "unknown model",
                host=str(info.host),
                port=int(info.port or 8009),
            )
        )

    def start(self) -> None:
        """Blocking: opens the mDNS sockets on ``addresses`` and starts browsing."""
        import zeroconf  # imported on first use, like pychromecast

        browser_class = load_pychromecast().discovery.CastBrowser
        self.zc = zeroconf.Zeroconf(
            interfaces=list(self.addresses), ip_version=zeroconf.IPVersion.V4Only
        )
        self.browser = browser_class(_Listener(self), self.zc)
        self.browser.start_discovery()
        log.info("looking for Chromecasts on %s", ", ".join(self.addresses))

    def stop(self) -> None:
        """Blocking: stops the browser threads and closes zeroconf (its sockets)."""
        browser, self.browser = self.browser, None
        zc, self.zc = self.zc, None
        if browser is not None:
            try:
                browser.stop_discovery()  # also closes the zeroconf instance
            except (OSError, RuntimeError) as e:
                log.warning("stopping Chromecast discovery: %s", e)
        elif zc is not None:
            zc.close()
