"""The DLNA room: a UPnP MediaServer:1 (ContentDirectory:1 + ConnectionManager:1) on
async-upnp-client's server side, over the library and the streamer; SSDP only on the streaming
interface (plus the LAN when ``dlna.serve_lan`` is set)."""

from sokoul_appliance.dlna.manager import Binding, DlnaManager

__all__ = ["Binding", "DlnaManager"]
