"""A real supervisor on a simulated board (what `./build.sh dev` runs): the MediaServer serves
on 127.0.0.1 only, /api/health and the device description agree, Browse answers, and the
process opens no SSDP socket at all (nothing on 0.0.0.0:1900; no UDP socket of its own)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.integration.supervisor_proc import SupervisorProcess

CDS = "urn:schemas-upnp-org:service:ContentDirectory:1"


def _sockets(kind: str, pid: int) -> list[str]:
    out = subprocess.run(["ss", kind, "-anp"], capture_output=True, text=True, check=True)
    return [ln for ln in out.stdout.splitlines() if f"pid={pid}," in ln]


def _browse(control: str, object_id: str) -> str:
    body = (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<s:Body><u:Browse xmlns:u="{CDS}"><ObjectID>{object_id}</ObjectID>'
        "<BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter>"
        "<StartingIndex>0</StartingIndex><RequestedCount>0</RequestedCount>"
        "<SortCriteria></SortCriteria></u:Browse></s:Body></s:Envelope>"
    ).encode()
    headers = {"SOAPACTION": f'"{CDS}#Browse"', "Content-Type": "text/xml"}
    request = urllib.request.Request(control, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as r:
        return str(r.read().decode())


def test_dev_supervisor_serves_dlna_on_loopback_without_ssdp(tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path / "state").start()
    try:
        assert sup.proc is not None
        with urllib.request.urlopen(sup.url + "/api/health", timeout=10) as r:
            health = json.load(r)
        urls = health["dlna"]["description_urls"]
        assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:")
        assert health["dlna"]["announced_on"] == []
        manager = next(m for m in health["managers"] if m["name"] == "dlna")
        assert manager["state"] == "ok" and "not announced" in manager["detail"]
        with urllib.request.urlopen(urls[0], timeout=10) as r:
            root = ET.fromstring(r.read())
        ns = {"d": "urn:schemas-upnp-org:device-1-0", "dlna": "urn:schemas-dlna-org:device-1-0"}
        assert root.findtext("d:device/d:UDN", namespaces=ns) == health["dlna"]["udn"]
        assert root.findtext("d:device/dlna:X_DLNADOC", namespaces=ns) == "DMS-1.50"
        control = urls[0].replace("/description.xml", "/upnp/control/ContentDirectory")
        # the simulated board's library is empty: the tree is there, the containers are empty
        assert "<TotalMatches>4</TotalMatches>" in _browse(control, "0")
        for empty in ("movies", "shows", "recent", "fo-root"):
            assert "<TotalMatches>0</TotalMatches>" in _browse(control, empty), empty
        # no SSDP in dev mode: no UDP socket of the supervisor at all, TCP only on loopback
        assert _sockets("-u", sup.proc.pid) == []
        listening = [ln for ln in _sockets("-t", sup.proc.pid) if ln.startswith("LISTEN")]
        assert listening and all(" 127.0.0.1:" in ln for ln in listening), listening
        port = urls[0].split(":")[2].split("/")[0]
        assert any(f"127.0.0.1:{port} " in ln for ln in listening)
    finally:
        assert sup.proc is not None
        sup.proc.terminate()
        sup.proc.wait(30)
