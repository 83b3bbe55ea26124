"""The device description (our own writer: async-upnp-client's serializer writes a fixed
element set, and TVs want DLNA's X_DLNADOC and Samsung's ProductCap in it)."""

from __future__ import annotations

from collections.abc import Sequence

from async_upnp_client.server import UpnpServerService

from sokoul_appliance.dlna.didl import text

DEVICE_TYPE = "urn:schemas-upnp-org:device:MediaServer:1"
DESCRIPTION_PATH = "/description.xml"
SAMSUNG_CAPS = "smi,DCM10,getMediaInfo.sec,getCaptionInfo.sec"


def device_description(
    udn: str,
    friendly_name: str,
    version: str,
    services: Sequence[UpnpServerService],
    serial: str,
) -> str:
    service_list = "".join(
        "<service>"
        f"<serviceType>{s.service_type}</serviceType><serviceId>{s.service_id}</serviceId>"
        f"<SCPDURL>{s.SERVICE_DEFINITION.scpd_url}</SCPDURL>"
        f"<controlURL>{s.SERVICE_DEFINITION.control_url}</controlURL>"
        f"<eventSubURL>{s.SERVICE_DEFINITION.event_sub_url}</eventSubURL>"
        "</service>"
        for s in services
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<root xmlns="urn:schemas-upnp-org:device-1-0" '
        'xmlns:dlna="urn:schemas-dlna-org:device-1-0" xmlns:sec="http://www.sec.co.kr/dlna">'
        "<specVersion><major>1</major><minor>0</minor></specVersion>"
        "<device>"
        f"<deviceType>{DEVICE_TYPE}</deviceType>"
        f"<friendlyName>{text(friendly_name)}</friendlyName>"
        "<manufacturer>SOKOUL</manufacturer>"
        "<modelDescription>SOKOUL home media appliance</modelDescription>"
        "<modelName>SOKOUL Appliance</modelName>"
        f"<modelNumber>{text(version)}</modelNumber>"
        f"<serialNumber>{text(serial)}</serialNumber>"
        f"<UDN>{text(udn)}</UDN>"
        "<dlna:X_DLNADOC>DMS-1.50</dlna:X_DLNADOC>"
        f"<sec:ProductCap>{SAMSUNG_CAPS}</sec:ProductCap>"
        f"<sec:X_ProductCap>{SAMSUNG_CAPS}</sec:X_ProductCap>"
        f"<serviceList>{service_list}</serviceList>"
        "</device></root>"
    )
