"""The MediaServer over HTTP on 127.0.0.1 (no SSDP), over a generated, scanned library: Browse
paging and the container tree, BrowseMetadata, Search, DIDL fields against the streamer's own
choice (and the bytes behind each res), replayed Samsung and LG requests, malformed SOAP,
SystemUpdateID following the library, a stable UDN, async-upnp-client's DmsDevice, metrics."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.profiles.dlna import DmsDevice
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.dlna import Binding, DlnaManager
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryItem, LibraryManager
from sokoul_appliance.store.database import Store
from sokoul_appliance.stream import StreamService
from tests.media_samples import SRT, make_video, need_ffmpeg

LIB = "/srv/media/library"
CDS = "urn:schemas-upnp-org:service:ContentDirectory:1"
CMS = "urn:schemas-upnp-org:service:ConnectionManager:1"
SAMSUNG_UA = "SEC_HHP_[TV] Samsung Q7 Series (55)/1.0"
LG_UA = "Linux/3.10.19-32.afro.4 UPnP/1.0 LGE WebOS TV LGE_DLNA_SDK/1.6.0 DLNADOC/1.50"
NS = {
    "d": "urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "upnp": "urn:schemas-upnp-org:metadata-1-0/upnp/",
    "sec": "http://www.sec.co.kr/",
    "u": "urn:schemas-upnp-org:control-1-0",
}
NASTY_DIR = 'Movies/Amélie & <Nino> "Ré" (2001)'
NASTY_FILE = 'Amélie & <Nino> "Ré" (2001).mp4'


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_ffmpeg()
    d = tmp_path_factory.mktemp("dlna-samples")
    poster = d / "poster.jpg"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "color=c=red:s=120x90", "-frames:v", "1", str(poster)],
        check=True, timeout=60,
    )  # fmt: skip
    return {
        "mp4": make_video(d / "a.mp4", seconds=2.0),
        "mkv": make_video(d / "b.mkv", 2.0),
        "poster": poster,
    }


@dataclass
class Rig:
    base: str
    http: aiohttp.ClientSession
    lib: LibraryManager
    stream: StreamService
    dlna: DlnaManager
    registry: CollectorRegistry
    bus: EventBus
    lib_dir: Path
    state: Path


async def _start_dlna(rig_parts: dict[str, object], state: Path) -> DlnaManager:
    manager = DlnaManager(
        rig_parts["bus"],  # type: ignore[arg-type]
        rig_parts["lib"],  # type: ignore[arg-type]
        rig_parts["stream"],  # type: ignore[arg-type]
        CollectorRegistry(),
        state,
        lambda: [Binding("127.0.0.1", None, "loopback")],
        lambda: "SOKOUL test",
        http_port=0,
    )
    await manager.start()
    return manager


@pytest.fixture
async def rig(tmp_path: Path, samples: dict[str, Path]) -> AsyncIterator[Rig]:
    root = tmp_path / "root"
    lib_dir = root / LIB.lstrip("/")
    files = {
        f"{NASTY_DIR}/{NASTY_FILE}": "mp4",
        "Movies/Inception (2010)/Inception (2010).mp4": "mp4",
        "Movies/Heat (1995)/Heat (1995).mkv": "mkv",
        "Shows/Severance/Season 01/Severance - S01E01.mp4": "mp4",
        "Shows/Severance/Season 01/Severance - S01E02.mp4": "mp4",
        "Shows/Severance/Season 02/Severance - S02E01.mp4": "mp4",
    }
    for rel, kind in files.items():
        (lib_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples[kind], lib_dir / rel)
    (lib_dir / NASTY_DIR / NASTY_FILE.replace(".mp4", ".en.srt")).write_text(SRT)
    (lib_dir / "Movies/Heat (1995)/Heat (1995).en.srt").write_text(SRT)
    shutil.copyfile(samples["poster"], lib_dir / "Movies/Inception (2010)/poster.jpg")
    store = Store(tmp_path / "state/sokoul.db")
    await store.start()
    registry = CollectorRegistry()
    bus = EventBus()
    host = Host(root)
    lib = LibraryManager(host, store, bus, registry, roots=(LIB,), watch=False)
    await lib.scan()
    stream = StreamService(host, lib, registry)
    manager = DlnaManager(
        bus,
        lib,
        stream,
        registry,
        tmp_path / "state",
        lambda: [Binding("127.0.0.1", None, "loopback")],
        lambda: "SOKOUL test",
        http_port=0,
    )
    await manager.start()
    http = aiohttp.ClientSession()
    try:
        yield Rig(
            f"http://127.0.0.1:{manager.port}",
            http,
            lib,
            stream,
            manager,
            registry,
            bus,
            lib_dir,
            tmp_path / "state",
        )
    finally:
        await http.close()
        await manager.stop()
        await store.stop()


def envelope(action: str, args: dict[str, str | int], service: str = CDS) -> str:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in args.items())
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        f'<u:{action} xmlns:u="{service}">{inner}</u:{action}></s:Body></s:Envelope>'
    )


@dataclass
class Answer:
    status: int
    out: dict[str, str]
    error: int | None


async def soap(
    rig: Rig,
    action: str,
    args: dict[str, str | int],
    headers: dict[str, str] | None = None,
    service: str = CDS,
    body: str | None = None,
    path: str | None = None,
) -> Answer:
    """headers may replace SOAPACTION, or drop it with the value "" ."""
    path = path or ("ContentDirectory" if service == CDS else "ConnectionManager")
    sent = {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPACTION": f'"{service}#{action}"',
        **(headers or {}),
    }
    async with rig.http.post(
        f"{rig.base}/upnp/control/{path}",
        data=(body if body is not None else envelope(action, args, service)).encode(),
        headers={k: v for k, v in sent.items() if v != ""},
    ) as r:
        text = await r.text()
        assert r.content_type == "text/xml", text  # never aiohttp's text/plain error page
    root = ET.fromstring(text)
    code = root.findtext(".//u:errorCode", namespaces=NS)
    body_el = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body_el is not None
    out = {c.tag: c.text or "" for c in body_el[0]} if code is None else {}
    return Answer(r.status, out, int(code) if code else None)


async def browse(
    rig: Rig,
    object_id: str,
    flag: str = "BrowseDirectChildren",
    start: int = 0,
    count: int = 0,
    filter_: str = "*",
    headers: dict[str, str] | None = None,
) -> tuple[ET.Element, int, int]:
    a = await soap(
        rig,
        "Browse",
        {"ObjectID": object_id, "BrowseFlag": flag, "Filter": filter_,
         "StartingIndex": start, "RequestedCount": count, "SortCriteria": ""},
        headers,
    )  # fmt: skip
    assert a.status == 200 and a.error is None, a
    return ET.fromstring(a.out["Result"]), int(a.out["NumberReturned"]), int(a.out["TotalMatches"])


def titles(didl: ET.Element) -> list[str]:
    return [el.findtext("dc:title", namespaces=NS) or "" for el in didl]


def ids(didl: ET.Element) -> list[str]:
    return [el.attrib["id"] for el in didl]


async def _item(rig: Rig, query: str) -> LibraryItem:
    found = (await rig.lib.items(query=query))[1]
    assert len(found) == 1, found
    return found[0]


async def test_tree_and_paging(rig: Rig) -> None:
    root, n, total = await browse(rig, "0")
    assert titles(root) == ["Movies", "Shows", "Recently added", "Folders"] and n == total == 4
    assert [el.attrib["childCount"] for el in root] == ["3", "1", "6", "2"]
    movies, n, total = await browse(rig, "movies")
    assert (n, total) == (3, 3)
    assert [t.split(" (")[0] for t in titles(movies)][1:] == ["Heat", "Inception"]
    assert all(el.tag.endswith("item") and el.attrib["parentID"] == "movies" for el in movies)
    page, n, total = await browse(rig, "movies", start=1, count=1)
    assert (n, total) == (1, 3) and ids(page) == ids(movies)[1:2]
    past, n, total = await browse(rig, "movies", start=5, count=10)
    assert (n, total, len(past)) == (0, 3, 0)
    shows, _, _ = await browse(rig, "shows")
    assert titles(shows) == ["Severance"]
    seasons, _, total = await browse(rig, ids(shows)[0])
    assert titles(seasons) == ["Season 1", "Season 2"] and total == 2
    assert [el.attrib["childCount"] for el in seasons] == ["2", "1"]
    episodes, _, _ = await browse(rig, ids(seasons)[0])
    assert [t.split(" - ")[1] for t in titles(episodes)] == ["S01E01", "S01E02"]
    assert {el.attrib["parentID"] for el in episodes} == {ids(seasons)[0]}
    recent, n, total = await browse(rig, "recent", count=4)
    assert (n, total) == (4, 6)
    folders, _, total = await browse(rig, "fo-root")
    assert titles(folders) == ["Movies", "Shows"] and total == 2
    # folders first, then items, paged as one list
    movie_folders, _, total = await browse(rig, ids(folders)[0])
    assert total == 3 and all(el.tag.endswith("container") for el in movie_folders)
    inside, _, total = await browse(rig, ids(movie_folders)[0])
    assert total == 1 and inside[0].tag.endswith("item")


async def test_metadata_and_unknown_ids(rig: Rig) -> None:
    inception = await _item(rig, "inception")
    meta, n, total = await browse(rig, inception.id, "BrowseMetadata")
    assert (n, total) == (1, 1) and meta[0].attrib["parentID"] == "movies"
    root, _, _ = await browse(rig, "0", "BrowseMetadata")
    assert root[0].attrib["parentID"] == "-1" and root[0].attrib["childCount"] == "4"
    episode = (await rig.lib.items(kind="episode"))[1][0]
    meta, _, _ = await browse(rig, episode.id, "BrowseMetadata")
    assert meta[0].attrib["parentID"].startswith("se-")
    for bad in ("it-0000000000000000", "../../etc/passwd", "/etc/passwd", "sh-nope", "", "42"):
        for flag in ("BrowseMetadata", "BrowseDirectChildren"):
            a = await soap(
                rig, "Browse",
                {"ObjectID": bad, "BrowseFlag": flag, "Filter": "*", "StartingIndex": 0,
                 "RequestedCount": 10, "SortCriteria": ""},
            )  # fmt: skip
            assert (a.status, a.error) == (500, 701), (bad, flag)
    # a path where an object id goes never reaches the filesystem on /stream either
    async with rig.http.get(f"{rig.base}/stream/..%2F..%2Fetc%2Fpasswd") as r:
        assert r.status == 404


async def test_didl_matches_the_streamer_and_the_bytes(rig: Rig) -> None:
    nasty = (await rig.lib.items(kind="movie", query="amelie"))[1][0]
    assert "&" in nasty.display_title and "é" in nasty.display_title
    meta, _, _ = await browse(rig, nasty.id, "BrowseMetadata")
    item = meta[0]
    assert item.findtext("dc:title", namespaces=NS) == nasty.display_title
    assert item.findtext("upnp:class", namespaces=NS) == "object.item.videoItem"
    assert item.findtext("dc:date", namespaces=NS) == "2001-01-01"
    res = item.findall("d:res", NS)
    _, choice = rig.stream.choose(nasty, rig.stream.profile_for(None))
    assert res[0].attrib["protocolInfo"] == choice.protocol_info
    assert "DLNA.ORG_PN=AVC_MP4_BL_CIF15_AAC_520;" in choice.protocol_info  # 320x240 Baseline
    assert res[0].attrib["size"] == str(nasty.size)
    assert res[0].attrib["duration"] == "0:00:02.000"
    assert res[0].attrib["resolution"] == "320x240"
    assert nasty.media is not None and nasty.media.bitrate
    assert res[0].attrib["bitrate"] == str(nasty.media.bitrate // 8)  # bytes per second
    async with rig.http.get(res[0].text or "") as r:
        body = await r.read()
        assert r.status == 200 and r.headers["contentFeatures.dlna.org"] in choice.protocol_info
    file = rig.lib_dir / NASTY_DIR / NASTY_FILE
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(file.read_bytes()).hexdigest()
    # the generic profile asks for no subtitle res unless the client does
    assert len(res) == 1


async def test_filter_is_honoured(rig: Rig) -> None:
    movies, _, _ = await browse(rig, "movies", filter_="dc:title,res@size")
    attributes = []
    for el in movies:
        assert {c.tag.split("}")[1] for c in el} == {"title", "class", "res"}
        attributes.append(set(el.find("d:res", NS).attrib))  # type: ignore[union-attr]
    # MKV is converted for the generic profile: a stream of unknown length has no size
    assert sorted(map(sorted, attributes)) == [
        ["protocolInfo"], ["protocolInfo", "size"], ["protocolInfo", "size"]
    ]  # fmt: skip
    bare, _, _ = await browse(rig, "movies", filter_="")
    assert all(el.find("d:res", NS) is None for el in bare)
    containers, _, _ = await browse(rig, "0", filter_="dc:title")
    assert all("childCount" not in el.attrib for el in containers)


async def test_samsung_replay(rig: Rig) -> None:
    """A Samsung TV's Browse: its User-Agent, getCaptionInfo.sec: 1 and a Filter naming
    sec:CaptionInfoEx; then X_GetFeatureList (how Samsung finds the video container)."""
    headers = {"User-Agent": SAMSUNG_UA, "getCaptionInfo.sec": "1"}
    flt = "dc:title,res,res@duration,res@size,upnp:class,sec:CaptionInfoEx,sec:dcmInfo"
    heat = await _item(rig, "heat")
    meta, _, _ = await browse(rig, heat.id, "BrowseMetadata", filter_=flt, headers=headers)
    item = meta[0]
    res = item.findall("d:res", NS)
    assert res[0].attrib["protocolInfo"].startswith("http-get:*:video/x-mkv:")  # as minidlna
    assert "DLNA.ORG_OP=01" in res[0].attrib["protocolInfo"]  # direct play, byte seek
    caption = item.find("sec:CaptionInfoEx", NS)
    assert caption is not None and caption.attrib["{http://www.sec.co.kr/}type"] == "srt"
    assert caption.text == f"{rig.base}/subtitles/{heat.id}/0.srt"
    assert [r.attrib["protocolInfo"] for r in res[1:]] == ["http-get:*:text/srt:*"]
    async with rig.http.get(caption.text, headers=headers) as r:
        assert r.status == 200 and "Hello from the sidecar" in await r.text()
    # the stream answers getCaptionInfo.sec with the same subtitle URL
    async with rig.http.head(res[0].text or "", headers=headers) as r:
        assert r.headers["CaptionInfo.sec"] == caption.text
    # without the header and without the Filter asking, no caption element
    plain, _, _ = await browse(
        rig, heat.id, "BrowseMetadata", filter_="dc:title,res", headers={"User-Agent": SAMSUNG_UA}
    )
    assert plain[0].find("sec:CaptionInfoEx", NS) is None
    a = await soap(rig, "X_GetFeatureList", {}, headers)
    assert a.status == 200
    features = ET.fromstring(a.out["FeatureList"])
    feature = features.find("{urn:schemas-upnp-org:av:avs}Feature")
    assert feature is not None and feature.attrib["name"] == "samsung.com_BASICVIEW"
    container = feature.find("{urn:schemas-upnp-org:av:avs}container")
    assert container is not None and container.attrib == {
        "id": "0", "type": "object.item.videoItem"
    }  # fmt: skip
    value = rig.registry.get_sample_value(
        "sokoul_dlna_soap_requests_total", {"action": "Browse", "client": "samsung"}
    )
    assert value == 2.0


async def test_samsung_resume_bookmark(rig: Rig) -> None:
    """X_SetBookmark (a Samsung TV stopping playback) is kept, and a Samsung Browse whose
    Filter names sec:dcmInfo carries it as BM= (minidlna's words), so the TV offers to resume;
    '*', other TVs and other items get nothing; 0 clears it; an unknown id is 701."""
    samsung = {"User-Agent": SAMSUNG_UA}
    flt = "dc:title,res,upnp:class,sec:CaptionInfoEx,sec:dcmInfo"
    heat = await _item(rig, "heat")

    async def dcm(filter_: str = flt, headers: dict[str, str] = samsung) -> str | None:
        meta, _, _ = await browse(rig, heat.id, "BrowseMetadata", filter_=filter_, headers=headers)
        return meta[0].findtext("sec:dcmInfo", namespaces=NS)

    title = heat.display_title
    assert await dcm() == f"CREATIONDATE=0,FOLDER={title},BM=0"
    args = {"CategoryType": "1", "RID": "0", "ObjectID": heat.id, "PosSecond": 754}
    a = await soap(rig, "X_SetBookmark", args, samsung)
    assert (a.status, a.error, a.out) == (200, None, {})
    assert await dcm() == f"CREATIONDATE=0,FOLDER={title},BM=754"
    movies, _, _ = await browse(rig, "movies", filter_=flt, headers=samsung)
    item = next(el for el in movies if el.attrib["id"] == heat.id)
    assert item.findtext("sec:dcmInfo", namespaces=NS) == f"CREATIONDATE=0,FOLDER={title},BM=754"
    others = [el.findtext("sec:dcmInfo", namespaces=NS) for el in movies if el is not item]
    assert others and all(o is not None and o.endswith(",BM=0") for o in others)
    assert await dcm("*") is None  # only when the Filter names it
    assert await dcm(headers={"User-Agent": LG_UA}) is None  # a Samsung profile's field
    assert await rig.lib.bookmarks() == {heat.id: 754}  # stored, survives a restart
    bad = await soap(rig, "X_SetBookmark", {**args, "ObjectID": "it-ffffffffffffffff"}, samsung)
    assert (bad.status, bad.error) == (500, 701)
    bad = await soap(rig, "X_SetBookmark", {**args, "ObjectID": "movies"}, samsung)
    assert (bad.status, bad.error) == (500, 701)
    a = await soap(rig, "X_SetBookmark", {**args, "PosSecond": 0}, samsung)
    assert a.status == 200 and await dcm() == f"CREATIONDATE=0,FOLDER={title},BM=0"
    assert await rig.lib.bookmarks() == {}


async def test_lg_replay(rig: Rig) -> None:
    """LG webOS: no CaptionInfo.sec, subtitles as a text/srt res of the item (profile data)."""
    headers = {"User-Agent": LG_UA}
    movies, _, _ = await browse(rig, "movies", filter_="*", headers=headers)
    heat = await _item(rig, "heat")
    item = next(el for el in movies if el.attrib["id"] == heat.id)
    assert item.find("sec:CaptionInfoEx", NS) is None  # caption_info_sec = false for LG
    res = item.findall("d:res", NS)
    assert res[0].attrib["protocolInfo"].startswith("http-get:*:video/x-matroska:")
    assert [(r.attrib["protocolInfo"], r.text) for r in res[1:]] == [
        ("http-get:*:text/srt:*", f"{rig.base}/subtitles/{heat.id}/0.srt")
    ]
    inception = next(
        el for el in movies if "Inception" in (el.findtext("dc:title", namespaces=NS) or "")
    )
    assert len(inception.findall("d:res", NS)) == 1  # no subtitles, no subtitle res


async def test_the_tvs_that_browse_are_remembered(rig: Rig) -> None:
    """The Devices page lists the TVs and players that browsed: named by their profile (or
    the User-Agent's product for a generic client), most recent first, counted, bounded."""
    await browse(rig, "movies", headers={"User-Agent": LG_UA})
    await browse(rig, "movies", headers={"User-Agent": SAMSUNG_UA})
    await browse(rig, "shows", headers={"User-Agent": SAMSUNG_UA})
    await browse(rig, "0", headers={"User-Agent": "VLC/3.0.18 LibVLC/3.0.18"})
    seen = rig.dlna.clients()
    assert [(c["name"], c["profile"], c["requests"]) for c in seen] == [
        ("VLC", "generic", 1),
        ("Samsung TV", "samsung", 2),
        ("LG TV (webOS)", "lg", 1),
    ]
    assert all(c["address"] == "127.0.0.1" for c in seen)
    assert seen[1]["user_agent"] == SAMSUNG_UA and seen[1]["last_seen"] >= seen[1]["first_seen"]
    for i in range(40):  # a noisy network cannot grow the list without bound
        await browse(rig, "0", headers={"User-Agent": f"Player{i}/1.0"})
    seen = rig.dlna.clients()
    assert len(seen) == 32 and seen[0]["name"] == "Player39"


async def test_search(rig: Rig) -> None:
    async def search(container: str, criteria: str, start: int = 0, count: int = 0) -> Answer:
        return await soap(
            rig, "Search",
            {"ContainerID": container, "SearchCriteria": criteria, "Filter": "*",
             "StartingIndex": start, "RequestedCount": count, "SortCriteria": ""},
        )  # fmt: skip

    a = await search(
        "0", 'upnp:class derivedfrom "object.item.videoItem" and dc:title contains "sever"'
    )
    assert a.status == 200 and (a.out["NumberReturned"], a.out["TotalMatches"]) == ("3", "3")
    a = await search("0", 'dc:title contains "heat" or dc:title contains "INCEPTION"')
    found = titles(ET.fromstring(a.out["Result"]))
    assert sorted(t.split(" (")[0] for t in found) == ["Heat", "Inception"]
    a = await search("movies", 'upnp:class derivedfrom "object.item.videoItem"', start=1, count=1)
    assert (a.out["NumberReturned"], a.out["TotalMatches"]) == ("1", "3")
    a = await search("shows", "*")
    assert a.out["TotalMatches"] == "3"
    a = await search("0", 'upnp:class derivedfrom "object.container"')
    assert a.out["TotalMatches"] == "0"
    a = await search("0", 'dc:title contains "unclosed')
    assert (a.status, a.error) == (500, 708)
    a = await search("it-0000000000000000", "*")
    assert (a.status, a.error) == (500, 710)


async def test_malformed_soap_gets_upnp_errors(rig: Rig) -> None:
    """Not a SOAP action at all → HTTP 400 with a UPnP fault body; a well-formed action that
    fails → UDA's 500 with the fault (docs/dlna.md, Errors)."""
    good = {"ObjectID": "0", "BrowseFlag": "BrowseDirectChildren", "Filter": "*",
            "StartingIndex": 0, "RequestedCount": 10, "SortCriteria": ""}  # fmt: skip
    bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><l>&b;</l>'
    dtd = envelope("Browse", good).replace(
        "<s:Envelope", "<!DOCTYPE s [<!ELEMENT s ANY>]><s:Envelope"
    )
    no_body = '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"></s:Envelope>'
    empty_body = no_body.replace("></s:Envelope>", "><s:Body/></s:Envelope>")
    cms = "urn:schemas-upnp-org:service:ConnectionManager:1"
    Case = tuple[str, dict[str, str | int], str | None, dict[str, str], str | None, int, int]
    cases: list[Case] = [
        # not a well-formed SOAP action: 400
        ("Browse", good, "<s:Envelope><unclosed", {}, None, 400, 401),
        ("Browse", good, "", {}, None, 400, 401),
        ("Browse", good, "<?xml version='1.0'?><x/>", {}, None, 400, 401),
        ("Browse", good, no_body, {}, None, 400, 401),
        ("Browse", good, empty_body, {}, None, 400, 401),
        ("Browse", good, bomb, {}, None, 400, 401),
        ("Browse", good, dtd, {}, None, 400, 401),
        ("Browse", good, None, {"SOAPACTION": ""}, None, 400, 401),
        ("Browse", good, None, {"SOAPACTION": "garbage"}, None, 400, 401),
        ("Browse", good, None, {"SOAPACTION": f'"{CDS}#Search"'}, None, 400, 401),
        ("Browse", good, None, {"SOAPACTION": f'"{cms}#Browse"'}, None, 400, 401),
        ("GetProtocolInfo", {}, None, {}, "ContentDirectory", 400, 401),  # CMS's, sent to CDS
        # well-formed actions that fail: 500
        ("NoSuchAction", {}, None, {}, None, 500, 401),
        ("Browse", {k: v for k, v in good.items() if k != "BrowseFlag"}, None, {}, None, 500, 402),
        ("Browse", {**good, "StartingIndex": "minus one"}, None, {}, None, 500, 402),
        ("Browse", {**good, "RequestedCount": -5}, None, {}, None, 500, 402),
        ("Browse", {**good, "BrowseFlag": "BrowseEverything"}, None, {}, None, 500, 402),
        ("Browse", {**good, "BrowseFlag": "BrowseMetadata", "StartingIndex": 3}, None, {}, None,
         500, 402),
        ("Browse", {**good, "ObjectID": "it-ffffffffffffffff"}, None, {}, None, 500, 701),
    ]  # fmt: skip
    for action, args, body, headers, path, status, code in cases:
        service = cms if action == "GetProtocolInfo" else CDS
        a = await soap(rig, action, args, headers, service=service, body=body, path=path)
        assert (a.status, a.error) == (status, code), (action, args, body, headers)
    errors = rig.registry.get_sample_value("sokoul_dlna_soap_errors_total", {"code": "401"})
    assert errors == 13.0
    # unquoted SOAPACTION (some control points) is read
    a = await soap(rig, "Browse", good, {"SOAPACTION": f"{CDS}#Browse"})
    assert a.status == 200 and a.out["NumberReturned"] == "4"
    # and the server answers normally afterwards
    _, n, _ = await browse(rig, "0")
    assert n == 4


async def test_sort_criteria(rig: Rig) -> None:
    async def page(
        object_id: str, sort: str, start: int = 0, count: int = 0
    ) -> tuple[list[str], int]:
        a = await soap(
            rig, "Browse",
            {"ObjectID": object_id, "BrowseFlag": "BrowseDirectChildren", "Filter": "*",
             "StartingIndex": start, "RequestedCount": count, "SortCriteria": sort},
        )  # fmt: skip
        assert a.status == 200 and a.error is None, (object_id, sort, a)
        return titles(ET.fromstring(a.out["Result"])), int(a.out["TotalMatches"])

    names, total = await page("movies", "")
    assert total == 3 and [t.split(" (")[0] for t in names][1:] == ["Heat", "Inception"]
    assert await page("movies", "+dc:title") == (names, 3)
    assert await page("movies", "-dc:title") == (names[::-1], 3)
    # descending pages line up, past the end is empty
    one_by_one = [(await page("movies", "-dc:title", i, 1))[0][0] for i in range(3)]
    assert one_by_one == names[::-1]
    assert await page("movies", "-dc:title", 1, 5) == (names[::-1][1:], 3)
    assert await page("movies", "-dc:title", 3, 5) == ([], 3)
    # the first property we sort by decides; the others and unknown ones are ignored (no 709)
    assert (await page("movies", "+upnp:class,-dc:title,+dc:date"))[0] == names[::-1]
    assert (await page("movies", " +upnp:artist , nonsense,,-,+"))[0] == names
    assert (await page("movies", "-DC:Title"))[0] == names[::-1]
    # dc:date is when the item was added: a movie added later is the newest
    new = rig.lib_dir / "Movies/Alien (1979)/Alien (1979).mp4"
    new.parent.mkdir()
    shutil.copyfile(rig.lib_dir / "Movies/Inception (2010)/Inception (2010).mp4", new)
    await rig.lib.scan()
    newest, total = await page("movies", "-dc:date")
    assert total == 4 and newest[0] == "Alien (1979)"
    oldest, _ = await page("movies", "+dc:date")
    assert oldest == newest[::-1]
    assert (await page("movies", "+dc:date", 3, 1))[0] == ["Alien (1979)"]
    # recently added: the same 100 newest, in the asked order
    recent, n = await page("recent", "")
    assert recent[0] == "Alien (1979)" and n == 7
    by_title, _ = await page("recent", "+dc:title")
    assert sorted(by_title) == sorted(recent) and by_title != recent
    assert (await page("recent", "-dc:title"))[0] == by_title[::-1]
    assert (await page("recent", "+dc:date"))[0] == recent[::-1]
    # containers follow dc:title: shows, seasons, folders (folders stay before items)
    shows, _, _ = await browse(rig, "shows")
    show = ids(shows)[0]
    assert (await page(show, "-dc:title"))[0] == ["Season 2", "Season 1"]
    assert (await page(show, "-upnp:episodeNumber"))[0] == ["Season 1", "Season 2"]
    assert (await page("fo-root", "-dc:title"))[0] == ["Shows", "Movies"]
    seasons, _, _ = await browse(rig, show)
    episodes, _ = await page(ids(seasons)[0], "-upnp:episodeNumber")
    assert [t.split(" - ")[1] for t in episodes] == ["S01E02", "S01E01"]
    episodes, _ = await page(ids(seasons)[0], "+upnp:originalTrackNumber")
    assert [t.split(" - ")[1] for t in episodes] == ["S01E01", "S01E02"]
    folders, _, _ = await browse(rig, "fo-root")
    movie_folders, n = await page(ids(folders)[0], "-dc:title")
    assert n == 4 and movie_folders == sorted(movie_folders, key=str.casefold, reverse=True)
    # Search takes SortCriteria too
    a = await soap(
        rig, "Search",
        {"ContainerID": "movies", "SearchCriteria": "*", "Filter": "*", "StartingIndex": 1,
         "RequestedCount": 2, "SortCriteria": "-dc:title"},
    )  # fmt: skip
    found = titles(ET.fromstring(a.out["Result"]))
    everything, _ = await page("movies", "-dc:title")
    assert (found, a.out["TotalMatches"]) == (everything[1:3], "4")


async def test_remembered_fragments_follow_the_item_and_the_client(rig: Rig) -> None:
    """The DIDL of an item is remembered per item facts and client: a sidecar added by a scan,
    another address in the Host header, another profile each give a fresh fragment."""
    samsung = {"User-Agent": SAMSUNG_UA, "getCaptionInfo.sec": "1"}
    inception = await _item(rig, "inception")

    async def inception_el(headers: dict[str, str]) -> ET.Element:
        page, _, _ = await browse(rig, "movies", headers=headers)
        return next(el for el in page if el.attrib["id"] == inception.id)

    before = await inception_el(samsung)
    assert before.find("sec:CaptionInfoEx", NS) is None
    assert (await inception_el(samsung)).find("sec:CaptionInfoEx", NS) is None  # remembered
    (rig.lib_dir / "Movies/Inception (2010)/Inception (2010).en.srt").write_text(SRT)
    await rig.lib.scan()
    after = await inception_el(samsung)
    caption = after.find("sec:CaptionInfoEx", NS)
    assert caption is not None and caption.text == f"{rig.base}/subtitles/{inception.id}/0.srt"
    other = await inception_el({**samsung, "Host": "10.0.1.1:8200"})
    res = other.find("d:res", NS)
    assert res is not None and res.text == f"http://10.0.1.1:8200/stream/{inception.id}"
    lg = await inception_el({"User-Agent": LG_UA})
    assert [r.attrib["protocolInfo"].split(":")[2] for r in lg.findall("d:res", NS)] == [
        "video/mp4",
        "text/srt",
    ]  # LG: the caption as a second res, no sec:
    assert lg.find("sec:CaptionInfoEx", NS) is None


async def test_connection_manager_and_capabilities(rig: Rig) -> None:
    a = await soap(rig, "GetSearchCapabilities", {})
    assert {"upnp:class", "dc:title"} <= set(a.out["SearchCaps"].split(","))
    a = await soap(rig, "GetSortCapabilities", {})
    assert a.status == 200
    assert a.out["SortCaps"] == "dc:title,dc:date,upnp:episodeNumber,upnp:originalTrackNumber"
    a = await soap(rig, "GetProtocolInfo", {}, service=CMS)
    source = a.out["Source"].split(",")
    assert {"http-get:*:video/mp4:*", "http-get:*:video/x-matroska:*"} <= set(source)
    assert a.out["Sink"] == ""
    a = await soap(rig, "GetCurrentConnectionIDs", {}, service=CMS)
    assert a.out["ConnectionIDs"] == "0"
    a = await soap(rig, "GetCurrentConnectionInfo", {"ConnectionID": 0}, service=CMS)
    assert (a.out["Status"], a.out["Direction"], a.out["RcsID"]) == ("OK", "Output", "-1")
    a = await soap(rig, "GetCurrentConnectionInfo", {"ConnectionID": 7}, service=CMS)
    assert (a.status, a.error) == (500, 706)


async def test_system_update_id_follows_the_library_and_the_udn_stays(rig: Rig) -> None:
    a = await soap(rig, "GetSystemUpdateID", {})
    before = int(a.out["Id"])
    _, _, total = await browse(rig, "movies")
    new = rig.lib_dir / "Movies/Heat (1995)/Heat.Director.Cut.(1995).mp4"
    shutil.copyfile(rig.lib_dir / "Movies/Inception (2010)/Inception (2010).mp4", new)
    await rig.lib.scan()  # two library updates: the new item, then its probe facts
    for _ in range(100):
        a = await soap(rig, "GetSystemUpdateID", {})
        if int(a.out["Id"]) >= before + 2:
            break
        await asyncio.sleep(0.02)
    assert int(a.out["Id"]) == before + 2
    _, _, after_total = await browse(rig, "movies")
    assert after_total == total + 1
    a2 = await soap(rig, "Browse", {"ObjectID": "movies", "BrowseFlag": "BrowseDirectChildren",
                                    "Filter": "*", "StartingIndex": 0, "RequestedCount": 1,
                                    "SortCriteria": ""})  # fmt: skip
    assert a2.out["UpdateID"] == str(before + 2)
    udn = rig.dlna.udn
    await rig.dlna.stop()
    again = DlnaManager(
        rig.bus, rig.lib, rig.stream, CollectorRegistry(), rig.state,
        lambda: [Binding("127.0.0.1", None, "loopback")], lambda: "SOKOUL test", http_port=0,
    )  # fmt: skip
    await again.start()
    try:
        assert again.udn == udn and again.update_id == before + 2
        async with rig.http.get(again.description_urls()[0]) as r:
            assert f"<UDN>{udn}</UDN>" in await r.text()
    finally:
        await again.stop()
    await rig.dlna.start()  # the fixture stops it


async def test_dms_device_profile_browses(rig: Rig) -> None:
    """async-upnp-client's own DMS profile: device description, SCPDs and Browse, as Home
    Assistant's DLNA integration uses it."""
    requester = AiohttpRequester()
    device = await UpnpFactory(requester).async_create_device(rig.dlna.description_urls()[0])
    dms = DmsDevice(device, None)
    assert dms.name == "SOKOUL test"
    top = await dms.async_browse_direct_children("0", metadata_filter="*")
    assert [o.title for o in top.result] == ["Movies", "Shows", "Recently added", "Folders"]
    movies = await dms.async_browse_direct_children("movies", metadata_filter="*")
    assert movies.total_matches == 3
    first = movies.result[0]
    assert first.res and first.res[0].protocol_info and first.res[0].uri.startswith(rig.base)
    meta = await dms.async_browse_metadata(first.id)
    assert meta.title == first.title
    found = await dms.async_search_directory("0", 'dc:title contains "heat"', metadata_filter="*")
    assert [o.title for o in found.result] == ["Heat (1995)"]
    await dms.async_update()  # polls GetSystemUpdateID and the capabilities
    assert dms.system_update_id == rig.dlna.update_id


async def test_body_in_pieces_and_oversized_body(rig: Rig) -> None:
    """A Browse whose body arrives in several TCP writes is read whole; a body over 64 KiB
    gets 402 without being read to the end."""
    body = envelope(
        "Browse",
        {"ObjectID": "movies", "BrowseFlag": "BrowseDirectChildren", "Filter": "*",
         "StartingIndex": 0, "RequestedCount": 2, "SortCriteria": ""},
    ).encode()  # fmt: skip

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 40):
            yield body[i : i + 40]
            await asyncio.sleep(0.01)

    headers = {"Content-Type": "text/xml", "SOAPACTION": f'"{CDS}#Browse"'}
    url = f"{rig.base}/upnp/control/ContentDirectory"
    async with rig.http.post(url, data=pieces(), headers=headers) as r:
        text = await r.text()
    assert r.status == 200 and "<NumberReturned>2</NumberReturned>" in text
    huge = body.replace(b"<Filter>*</Filter>", b"<Filter>" + b"x," * 40000 + b"</Filter>")
    async with rig.http.post(url, data=huge, headers=headers) as r:
        text = await r.text()
    assert r.status == 400 and "<errorCode>402</errorCode>" in text


async def test_album_art_from_a_poster_beside_the_file(rig: Rig) -> None:
    headers = {"User-Agent": SAMSUNG_UA}
    inception = await _item(rig, "inception")
    # BrowseMetadata waits for the look-up; a page waits at most 15 ms (then the next has it)
    meta, _, _ = await browse(rig, inception.id, "BrowseMetadata", filter_="*", headers=headers)
    assert meta[0].find("upnp:albumArtURI", NS) is not None
    movies, _, _ = await browse(rig, "movies", filter_="*", headers=headers)
    arts = {
        el.attrib["id"]: el.find("upnp:albumArtURI", NS) for el in movies
    }  # fmt: skip
    art = arts.pop(inception.id)
    assert art is not None and art.text == f"{rig.base}/art/{inception.id}"
    assert art.attrib["{urn:schemas-dlna-org:metadata-1-0/}profileID"] == "JPEG_TN"  # 120x90
    assert all(a is None for a in arts.values())  # no poster beside the others
    async with rig.http.get(art.text) as r:
        body = await r.read()
        assert r.status == 200 and r.content_type == "image/jpeg"
    poster = rig.lib_dir / "Movies/Inception (2010)/poster.jpg"
    assert body == poster.read_bytes()
    # asked for only the title: no artwork element
    bare, _, _ = await browse(rig, inception.id, "BrowseMetadata", filter_="dc:title")
    assert bare[0].find("upnp:albumArtURI", NS) is None
    for bad in ("it-0000000000000000", "..%2F..%2Fetc%2Fpasswd", "sh-abc"):
        async with rig.http.get(f"{rig.base}/art/{bad}") as r:
            assert r.status == 404
