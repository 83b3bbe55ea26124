"""SOAP control: parse the envelope, call the action, write the answer or a UPnP fault.

Every failure a client can cause gets a UPnP fault body (s:Fault whose detail holds
UPnPError/errorCode), never an aiohttp error page. The HTTP status says whose fault it is:

- **400 Bad Request** when the request is not a well-formed SOAP action at all: the body is not
  XML (or defusedxml refuses it: DTDs, entities), no Envelope/Body/action element, SOAPACTION
  missing, unreadable, naming another service or another action than the body, a body over
  64 KiB. Code 401 Invalid Action (402 Invalid Args for the oversized body).
- **500** (UDA 1.0 section 3.2.2) when a well-formed action fails: an action we do not have
  (401), missing or malformed arguments (402), the action's own codes (701 No such object,
  708, 710, 706), and 501 Action Failed for our own bugs (logged with the traceback).

async-upnp-client reads the fault body whatever the non-200 status; docs/dlna.md has why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
from aiohttp import web
from async_upnp_client.exceptions import UpnpActionError, UpnpError, UpnpValueError
from async_upnp_client.server import UpnpServerAction, UpnpServerService

from sokoul_appliance.dlna.content import Client
from sokoul_appliance.dlna.didl import text
from sokoul_appliance.dlna.metrics import DlnaMetrics
from sokoul_appliance.dlna.services import CLIENT

log = logging.getLogger("sokoul.dlna")

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
ENVELOPE_OPEN = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<s:Envelope xmlns:s="{SOAP_NS}" '
    's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
)
ENVELOPE_CLOSE = "</s:Body></s:Envelope>"
ERROR_TEXT = {
    401: "Invalid Action",
    402: "Invalid Args",
    501: "Action Failed",
    701: "No such object",
    706: "Invalid connection reference",
    708: "Unsupported or invalid search criteria",
    709: "Unsupported or invalid sort criteria",
    710: "No such container",
    720: "Cannot process the request",
}
MAX_BODY = 64 * 1024


class SoapFault(Exception):
    """A UPnP fault; status 500 (a well-formed action that failed) or 400 (not a SOAP action
    at all, see bad_request)."""

    def __init__(self, code: int, description: str | None = None, status: int = 500) -> None:
        super().__init__(description or ERROR_TEXT.get(code, "Error"))
        self.code = code
        self.description = description or ERROR_TEXT.get(code, "Error")
        self.status = status


def bad_request(code: int, description: str) -> SoapFault:
    """The request is not a well-formed SOAP action: HTTP 400 with a UPnP fault body."""
    return SoapFault(code, description, status=400)


def fault_response(code: int, description: str, status: int = 500) -> web.Response:
    body = (
        f"{ENVELOPE_OPEN}<s:Fault><faultcode>s:Client</faultcode>"
        "<faultstring>UPnPError</faultstring><detail>"
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode><errorDescription>{text(description)}"
        f"</errorDescription></UPnPError></detail></s:Fault>{ENVELOPE_CLOSE}"
    )
    return web.Response(
        status=status, body=body.encode(), content_type="text/xml", charset="utf-8",
        headers={"EXT": ""},
    )  # fmt: skip


_RANGES = {"ui1": (0, 2**8), "ui2": (0, 2**16), "ui4": (0, 2**32),
           "i1": (-(2**7), 2**7), "i2": (-(2**15), 2**15), "i4": (-(2**31), 2**31)}  # fmt: skip


def _check_range(data_type: str, value: Any) -> None:
    """The library coerces '-5' to an int for a ui4: refuse what the type cannot hold."""
    bounds = _RANGES.get(data_type)
    if bounds is not None and not bounds[0] <= value < bounds[1]:
        raise ValueError(f"{value} is out of range for {data_type}")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _same_service(named: str, ours: str) -> bool:
    """urn:…:service:ContentDirectory:N names ours when the type matches (ignoring case), in
    any version: a control point should send the version it discovered, but one that sends
    another has still named this service, not garbage."""
    kind, _, version = named.rpartition(":")
    return kind.casefold() == ours.rpartition(":")[0].casefold() and version.isdigit()


def _split_soap_action(soap_action: str | None) -> tuple[str, str]:
    """(service type, action) from SOAPACTION: `"urn:…:service:X:1#Action"`; quotes optional
    (some control points leave them out)."""
    value = (soap_action or "").strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].strip()
    service, sep, action = value.rpartition("#")
    if not sep or not service or not action:
        raise bad_request(401, f"Invalid Action: SOAPACTION missing or unreadable ({value!r})")
    return service, action


def parse_envelope(
    data: bytes, soap_action: str | None, service_type: str | None = None
) -> tuple[str, dict[str, str]]:
    """(action name, {argument: text}) from the request. A request that is not a well-formed
    SOAP action (unreadable body, no action element, SOAPACTION missing or disagreeing with
    the body, another service than service_type) raises SoapFault(401) with status 400."""
    try:
        root: Element = DET.fromstring(data, forbid_dtd=True)  # SOAP 1.1: no DTD
    except (ParseError, ValueError) as e:  # defusedxml's refusals are ValueErrors
        raise bad_request(401, f"Invalid Action: the SOAP envelope is not XML ({e})") from None
    body = next((c for c in root if _local(c.tag) == "Body"), None)
    if _local(root.tag) != "Envelope" or body is None or len(body) == 0:
        raise bad_request(401, "Invalid Action: no SOAP Body with an action in it")
    call = body[0]
    name = _local(call.tag)
    header_service, header_action = _split_soap_action(soap_action)
    if header_action != name:
        raise bad_request(401, f"Invalid Action: SOAPACTION says {header_action}, body {name}")
    body_service = call.tag[1:].partition("}")[0] if call.tag.startswith("{") else ""
    for named in (header_service, body_service):
        if service_type is not None and named and not _same_service(named, service_type):
            raise bad_request(401, f"Invalid Action: {named} is not served here")
    return name, {_local(a.tag): a.text or "" for a in call}


async def _read_body(request: web.Request) -> bytes:
    """The whole body (a read() returns what has arrived, not necessarily all of it), at most
    MAX_BODY bytes."""
    if (request.content_length or 0) > MAX_BODY:
        raise bad_request(402, "Invalid Args: the request is too large")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise bad_request(402, "Invalid Args: the request is too large")
    return b"".join(chunks)


class ControlHandler:
    """aiohttp handler for one service's control URL."""

    def __init__(
        self,
        service: UpnpServerService,
        metrics: DlnaMetrics,
        client_for: Callable[[web.Request], Client],
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.client_for = client_for

    async def __call__(self, request: web.Request) -> web.Response:
        client = self.client_for(request)
        action_label = "unknown"
        try:
            data = await _read_body(request)
            name, raw = parse_envelope(
                data, request.headers.get("SOAPACTION"), self.service.service_type
            )
            action = self.service.actions.get(name)
            if action is None:
                raise SoapFault(401, f"Invalid Action: no action {name!r} here")
            action_label = name
            kwargs: dict[str, Any] = {}
            for arg in action.in_arguments():
                if arg.name not in raw:
                    raise SoapFault(402, f"Invalid Args: {arg.name} is missing")
                try:
                    value = arg.coerce_python(raw[arg.name])
                    arg.validate_value(value)
                    _check_range(arg.related_state_variable.data_type, value)
                except (ValueError, TypeError, UpnpError) as e:
                    raise SoapFault(402, f"Invalid Args: {arg.name}: {e}") from None
                kwargs[arg.name] = value
            CLIENT.set(client)
            assert isinstance(action, UpnpServerAction)
            result = await action.async_handle(**kwargs)
            return self._answer(name, result)
        except SoapFault as e:
            return self._fault(e.code, e.description, e.status)
        except UpnpActionError as e:
            code = e.error_code or 501
            return self._fault(code, e.error_desc or ERROR_TEXT.get(code, "Error"))
        except UpnpValueError as e:
            return self._fault(402, f"Invalid Args: {e}")
        except Exception:
            log.exception("DLNA action %s failed", action_label)
            return self._fault(501, "Action Failed")
        finally:
            self.metrics.soap.labels(action=action_label, client=client.profile.name).inc()

    def _fault(self, code: int, description: str, status: int = 500) -> web.Response:
        self.metrics.errors.labels(code=str(code)).inc()
        return fault_response(code, description, status)

    def _answer(self, name: str, result: dict[str, Any]) -> web.Response:
        service_type = self.service.service_type
        parts = [ENVELOPE_OPEN, f'<u:{name}Response xmlns:u="{service_type}">']
        for key, value in result.items():
            parts.append(f"<{key}>{text(str(value))}</{key}>")
        parts.append(f"</u:{name}Response>{ENVELOPE_CLOSE}")
        return web.Response(
            body="".join(parts).encode(), content_type="text/xml", charset="utf-8",
            headers={"EXT": ""},
        )  # fmt: skip
