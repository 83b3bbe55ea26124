"""Subsystems that are not part of this build yet (network, storage, VPN, library, downloads,
DLNA, casting, thermal governor). They report their real state — "unavailable", or
"not_configured" with the saved plan — so the panel never shows invented data."""

from __future__ import annotations

from sokoul_appliance.store.settings import Settings


class PlannedSubsystem:
    def __init__(
        self, name: str, title: str, settings: Settings, plan_key: str | None = None
    ) -> None:
        self.name = name
        self.title = title
        self._settings = settings
        self._plan_key = plan_key

    def plan(self) -> object:
        return self._settings.get(self._plan_key) if self._plan_key else None

    def status(self) -> tuple[str, str]:
        if self.plan():
            return (
                "not_configured",
                f"Your {self.title if self.title.isupper() else self.title.lower()} choices "
                "are saved; the manager that applies them "
                "is not part of this build yet.",
            )
        return "unavailable", f"{self.title} is not part of this build yet."
