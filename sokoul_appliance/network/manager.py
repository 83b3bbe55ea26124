"""NetworkManager: builds the configuration from settings and discovery, applies it (live
addresses, firewall, DHCP server, DHCP client), persists it to netplan, and runs every change
through a rollback trial.

Against a simulated board (``host.live`` False) it is read-only: it renders the netplan file
and the ruleset and shows what it would do, and changes nothing (``live=True`` is for tests that
run it inside a network namespace with a temporary host root).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from sokoul_appliance.bus import EventBus
from sokoul_appliance.events import ManagerStateChanged, SettingsChanged
from sokoul_appliance.host import CommandError, Host
from sokoul_appliance.network.dhcp_client import DhcpClient, NetworkdDhcp
from sokoul_appliance.network.dhcp_server import DnsmasqServer
from sokoul_appliance.network.firewall import Firewall, render_ruleset, rules_table
from sokoul_appliance.network.live import LinkState, LiveNetwork, LiveNetworkError
from sokoul_appliance.network.netplan import NETPLAN_FILE, TEMPLATES, NetplanError, NetplanWriter
from sokoul_appliance.network.roles import (
    INTERNET,
    NETWORK_KEYS,
    STREAMING,
    NetworkConfig,
    NetworkConfigError,
    Services,
    check_plan,
    config_from_settings,
)
from sokoul_appliance.network.rollback import DEFAULT_TIMEOUT, RollbackTimer, TrialError
from sokoul_appliance.store.settings import KEYS, Settings
from sokoul_appliance.tasks import cancel_and_wait

log = logging.getLogger("sokoul.network")

RUN_DIR = "/run/sokoul/network"


class NetworkChangeError(ValueError):
    """A change that was refused; ``fields`` maps settings keys to what is wrong with them."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        self.fields = fields or {}
        super().__init__(message)


class NetworkReadOnlyError(NetworkChangeError):
    pass


class _Metrics(Collector):
    def __init__(self, manager: NetworkManager) -> None:
        self._m = manager

    def collect(self) -> Iterator[Metric]:
        rx = CounterMetricFamily(
            "sokoul_network_receive_bytes", "Bytes received per port role", labels=["port"]
        )
        tx = CounterMetricFamily(
            "sokoul_network_transmit_bytes", "Bytes sent per port role", labels=["port"]
        )
        for role, link in self._m.links.items():
            rx.add_metric([role], link.rx_bytes)
            tx.add_metric([role], link.tx_bytes)
        dropped = CounterMetricFamily(
            "sokoul_firewall_dropped_packets",
            "Packets the firewall dropped, by chain",
            labels=["chain"],
        )
        for chain, packets in sorted(self._m.dropped.items()):
            dropped.add_metric([chain], packets)
        yield rx
        yield tx
        yield dropped


class NetworkManager:
    name = "network"
    title = "Network"

    def __init__(
        self,
        host: Host,
        bus: EventBus,
        settings: Settings,
        registry: CollectorRegistry | None,
        ports: Callable[[], Sequence[Mapping[str, Any]]],
        *,
        services: Services | None = None,
        dhcp_client: DhcpClient | None = None,
        live: bool | None = None,
        rollback_seconds: float = DEFAULT_TIMEOUT,
        templates: Path = TEMPLATES,
        sample_interval: float = 5.0,
    ) -> None:
        self._host = host
        self._bus = bus
        self._settings = settings
        self._ports = ports
        self._services = services or Services()
        self.live = host.live if live is None else live
        self._run_dir = host.path(RUN_DIR)
        self._dhcp_client: DhcpClient = dhcp_client or NetworkdDhcp(host)
        self._dhcp_server = DnsmasqServer(self._run_dir)
        self._firewall = Firewall(host, self._run_dir)
        self._netplan = NetplanWriter(host, templates)
        self._net = LiveNetwork()
        self._rollback = RollbackTimer()
        self.rollback_seconds = rollback_seconds
        self._sample_interval = sample_interval
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.config: NetworkConfig | None = None  # what is applied (or would be)
        self.links: dict[str, LinkState] = {}
        self.dropped: dict[str, int] = {}
        self._tv_leases: list[dict[str, Any]] = []
        self._internet_lease: dict[str, Any] | None = None
        self._state = ("starting", "Starting.")
        if registry is not None:
            registry.register(_Metrics(self))

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._reconcile(write_netplan=True)
        self._tasks = [
            asyncio.create_task(self._watch_settings(), name="network-settings"),
        ]
        if self.live:
            self._tasks.append(asyncio.create_task(self._sample_loop(), name="network-sample"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self._rollback.close()
        # the ports keep their addresses and the firewall stays (the appliance must stay
        # reachable and protected while the supervisor restarts); child processes end with us
        await self._dhcp_server.stop()
        await self._dhcp_client.stop()

    def status(self) -> tuple[str, str]:
        return self._state

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != self._state:
            self._state = (state, detail)
            self._bus.publish(ManagerStateChanged(self.name, state, detail))

    # -- building and applying ---------------------------------------------------------------

    def _build(self, overrides: Mapping[str, Any] | None = None) -> NetworkConfig:
        values = dict(overrides or {})

        def get(key: str) -> Any:
            return values[key] if key in values else self._settings.get(key)

        return config_from_settings(get, self._ports(), self._services)

    async def _reconcile(self, write_netplan: bool) -> None:
        """Apply what the settings say now (start, and settings changed outside a trial)."""
        async with self._lock:
            try:
                config = self._build()
            except NetworkConfigError as e:
                self.config = None
                waiting = self._settings.get("network.plan") is None
                self._set_state("waiting" if waiting else "error", str(e))
                return
            if not self.live:
                self.config = config
                self._set_state(
                    "unavailable",
                    "Simulated board (read-only): showing the configuration it would apply; "
                    "nothing on this machine is changed.",
                )
                return
            try:
                await self._apply(config, self.config)
                if write_netplan:
                    await self._netplan.write(config)
            except (CommandError, LiveNetworkError, NetplanError, RuntimeError, OSError) as e:
                log.exception("applying the network configuration failed")
                self._set_state("error", f"Could not apply the network configuration: {e}")
                return
            self._set_state("ok", self._summary(config))

    def _summary(self, config: NetworkConfig) -> str:
        internet = (
            f"static {config.internet_address}"
            if config.internet_mode == "static"
            else f"DHCP ({self._dhcp_client.name})"
        )
        return (
            f"Internet on {config.internet.name} ({internet}); streaming on "
            f"{config.streaming.name} ({config.streaming_address}, DHCP for TVs)."
        )

    async def _apply(self, config: NetworkConfig, previous: NetworkConfig | None) -> None:
        """Addresses, DHCP client, firewall, DHCP server: the order keeps the appliance
        protected (the new ruleset goes in before the DHCP server answers)."""
        await self._net.set_addresses(config.streaming.name, [config.streaming_address])
        if previous is not None and previous.internet.name != config.internet.name:
            await self._dhcp_client.stop()
        if config.internet_mode == "static":
            await self._dhcp_client.stop()
            assert config.internet_address is not None
            await self._net.set_addresses(
                config.internet.name, [config.internet_address], config.internet_gateway
            )
        else:
            if previous is not None and previous.internet_mode == "static":
                await self._net.flush(config.internet.name)
            await self._dhcp_client.start(config.internet.name)
        if config.nat_streaming:
            await self._host.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", timeout=10)
        await self._firewall.apply(render_ruleset(config))
        await self._dhcp_server.start(config)
        self.config = config

    # -- changes with rollback ---------------------------------------------------------------

    def _validate(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        clean: dict[str, Any] = {}
        if not isinstance(changes, Mapping) or not changes:
            raise NetworkChangeError("send at least one network setting to change")
        for key, value in changes.items():
            if key not in NETWORK_KEYS:
                errors[key] = "not a network setting"
                continue
            if key == "network.plan":
                # the port roles: each field's problem named next to it (panel form)
                plan, plan_errors = check_plan(value, [p["name"] for p in self._ports()])
                errors.update(plan_errors)
                clean[key] = plan
                continue
            try:
                clean[key] = KEYS[key].check(value)
            except ValueError as e:
                errors[key] = str(e)
        if errors:
            raise NetworkChangeError("please correct the highlighted fields", errors)
        return clean

    def preview(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """What a change would do (config, netplan text, ruleset), applying nothing."""
        clean = self._validate(changes)
        try:
            config = self._build(clean)
        except NetworkConfigError as e:
            raise NetworkChangeError(str(e)) from e
        return self._rendered(config) | {"config": config.to_json()}

    async def apply_change(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and apply ``changes`` (settings keys -> values, e.g.
        {"network.internet_mode": "static", "network.internet_address": "192.168.1.20/24"})
        now; they roll back by themselves after ``rollback_seconds`` unless ``confirm``ed.
        Returns the trial (id, deadline, seconds_left)."""
        if not self.live:
            raise NetworkReadOnlyError(
                "This supervisor runs against a simulated board: network changes are shown, "
                "not applied."
            )
        clean = self._validate(changes)
        async with self._lock:
            if self._rollback.pending is not None:
                raise NetworkChangeError(
                    "another network change is waiting for confirmation: confirm it or wait "
                    f"{self._rollback.snapshot()['pending']['seconds_left']:.0f} s for it to "
                    "roll back"
                )
            try:
                config = self._build(clean)
            except NetworkConfigError as e:
                raise NetworkChangeError(str(e)) from e
            previous = self.config
            try:
                await self._apply(config, previous)
            except (CommandError, LiveNetworkError, RuntimeError, OSError) as e:
                log.exception("network change failed; restoring the previous configuration")
                if previous is not None:
                    await self._apply(previous, config)
                raise NetworkChangeError(
                    f"The change could not be applied and was undone: {e}"
                ) from e
            trial = self._rollback.begin(clean, self.rollback_seconds, self._revert_to(previous))
        self._set_state(
            "degraded",
            f"Network change {trial.id} on trial: confirm within "
            f"{self.rollback_seconds:.0f} s or it rolls back.",
        )
        return trial.to_json(trial.started_at)

    def _revert_to(self, previous: NetworkConfig | None) -> Callable[[], Any]:
        async def revert() -> None:
            async with self._lock:
                if previous is not None:
                    await self._apply(previous, self.config)
            if previous is not None:
                self._set_state("ok", "Change rolled back. " + self._summary(previous))

        return revert

    async def confirm(self, trial_id: str) -> dict[str, Any]:
        """Keep the change on trial: save its settings and write the netplan file."""
        async with self._lock:
            try:
                trial = self._rollback.confirm(trial_id)
            except TrialError as e:
                raise NetworkChangeError(str(e)) from e
            await self._settings.update(trial.changes)
            assert self.config is not None
            await self._netplan.write(self.config)
            self._set_state("ok", self._summary(self.config))
        return self._rollback.snapshot()

    async def revert(self, trial_id: str) -> dict[str, Any]:
        """Roll the change on trial back now (the panel's "undo")."""
        async with self._lock:
            try:
                self._rollback.abandon(trial_id, "reverted", "Undone on request.")
            except TrialError as e:
                raise NetworkChangeError(str(e)) from e
        await self._reconcile(write_netplan=False)
        return self._rollback.snapshot()

    # -- background --------------------------------------------------------------------------

    async def _watch_settings(self) -> None:
        with self._bus.subscribe(SettingsChanged) as sub:
            while True:
                event: SettingsChanged = await sub.get()
                if not set(event.keys) & set(NETWORK_KEYS) or self._rollback.pending:
                    continue
                try:
                    wanted = self._build()
                except NetworkConfigError:
                    wanted = None
                if wanted is None or wanted != self.config or self._state[0] != "ok":
                    await self._reconcile(write_netplan=True)

    async def sample(self) -> None:
        """Refresh link counters, firewall counters and leases (worker threads)."""
        config = self.config
        if not self.live or config is None:
            return
        links = await self._net.read([config.internet.name, config.streaming.name])
        self.links = {
            role: links[port.name]
            for role, port in ((INTERNET, config.internet), (STREAMING, config.streaming))
            if port.name in links
        }
        self.dropped = await self._firewall.read_counters()
        self._tv_leases = await asyncio.to_thread(self._dhcp_server.leases)
        self._internet_lease = await asyncio.to_thread(self._dhcp_client.lease)

    async def _sample_loop(self) -> None:
        while True:
            try:
                await self.sample()
            except (CommandError, LiveNetworkError, OSError, TimeoutError) as e:
                log.warning("network sample failed: %s", e)
            await asyncio.sleep(self._sample_interval)

    # -- views -------------------------------------------------------------------------------

    def _rendered(self, config: NetworkConfig) -> dict[str, Any]:
        return {
            "netplan_path": NETPLAN_FILE,
            "netplan": self._netplan.render(config),
            "nftables": render_ruleset(config),
        }

    def snapshot(self) -> dict[str, Any]:
        state, detail = self._state
        config = self.config
        out: dict[str, Any] = {
            "state": state,
            "detail": detail,
            "applies_changes": self.live,
            "config": config.to_json() if config else None,
            "rendered": self._rendered(config) if config else None,
            "firewall": {
                "rules": [r.to_json() for r in rules_table(config)] if config else [],
                "dropped_packets": dict(self.dropped),
            },
            "links": {role: link.to_json() for role, link in self.links.items()},
            "dhcp_client": self._dhcp_client.name,
            "internet_lease": self._internet_lease,
            "tv_leases": list(self._tv_leases),
            "change": self._rollback.snapshot(),
        }
        return out
