"""The cast room: Chromecast discovery (pychromecast + zeroconf on the chosen interfaces only)
and casting library items through the stream room's URLs."""

from sokoul_appliance.cast.manager import CastConfig, CastManager, CastRequestError

__all__ = ["CastConfig", "CastManager", "CastRequestError"]
