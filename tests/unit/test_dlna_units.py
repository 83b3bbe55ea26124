"""Pure pieces of the DLNA server: the UPnP search-criteria parser and evaluator, the Filter,
DIDL-Lite escaping (titles with & < > " and non-ASCII come back intact from a real XML parser),
the SOAP envelope reader, the device description."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sokoul_appliance.dlna import didl
from sokoul_appliance.dlna.artwork import dlna_profile, find_artwork, image_size
from sokoul_appliance.dlna.description import device_description
from sokoul_appliance.dlna.search import (
    Everything,
    Exists,
    Logic,
    Rel,
    SearchCriteriaError,
    matches,
    parse_criteria,
)
from sokoul_appliance.dlna.soap import SoapFault, fault_response, parse_envelope

DIDL_NS = {
    "d": "urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "upnp": "urn:schemas-upnp-org:metadata-1-0/upnp/",
    "sec": "http://www.sec.co.kr/",
    "dlna": "urn:schemas-dlna-org:metadata-1-0/",
}
VIDEO = {"upnp:class": ["object.item.videoItem"], "dc:title": ["The Dark Knight (2008)"]}


def test_criteria_precedence_and_binds_tighter_than_or() -> None:
    node = parse_criteria('dc:title contains "a" or dc:title contains "b" and @id = "x"')
    assert node == Logic(
        "or",
        Rel("dc:title", "contains", "a"),
        Logic("and", Rel("dc:title", "contains", "b"), Rel("@id", "=", "x")),
    )


def test_criteria_parentheses_escapes_and_exists() -> None:
    node = parse_criteria(
        '(upnp:class derivedfrom "object.item.videoItem" AND dc:title contains "say \\"hi\\"")'
        " or upnp:genre exists false"
    )
    assert isinstance(node, Logic) and node.op == "or"
    assert node.left == Logic(
        "and",
        Rel("upnp:class", "derivedfrom", "object.item.videoItem"),
        Rel("dc:title", "contains", 'say "hi"'),
    )
    assert node.right == Exists("upnp:genre", False)
    assert parse_criteria("*") == Everything()
    assert parse_criteria("  ") == Everything()


@pytest.mark.parametrize(
    "criteria,expected",
    [
        ('upnp:class derivedfrom "object.item"', True),
        ('upnp:class derivedfrom "object.item.videoItem"', True),
        ('upnp:class derivedfrom "object.item.video"', False),  # a prefix, not a class
        ('upnp:class derivedfrom "object.container"', False),
        ('upnp:class = "object.item.videoItem"', True),
        ('dc:title contains "DARK"', True),  # case-insensitive, as minidlna's LIKE
        ('dc:title doesNotContain "dark"', False),
        ('dc:title contains "light" or dc:title contains "knight"', True),
        ('dc:title contains "light" and upnp:class derivedfrom "object.item"', False),
        ("dc:title exists true", True),
        ("upnp:artist exists true", False),
        ('dc:title != "x"', True),
    ],
)
def test_criteria_evaluation(criteria: str, expected: bool) -> None:
    assert matches(parse_criteria(criteria), VIDEO) is expected


def test_numeric_comparison() -> None:
    props = {"res@size": ["1000"]}
    assert matches(parse_criteria('res@size > "999"'), props)
    assert not matches(parse_criteria('res@size < "200"'), props)  # as numbers, not text


@pytest.mark.parametrize(
    "bad",
    [
        'dc:title contains "unclosed',
        "dc:title contains dark",
        'dc:title likes "x"',
        '(dc:title contains "x"',
        'dc:title contains "x" and',
        'dc:title contains "x" "y"',
        "dc:title exists maybe",
        '= "x"',
    ],
)
def test_bad_criteria(bad: str) -> None:
    with pytest.raises(SearchCriteriaError):
        parse_criteria(bad)


def test_filter_parsing() -> None:
    f = didl.Filter.parse("dc:title, res@size ,sec:CaptionInfoEx")
    assert not f.everything and f.res and f.res_attr("size") and not f.res_attr("duration")
    assert f.asks("sec:CaptionInfoEx") and not f.child_count
    star = didl.Filter.parse("*")
    assert star.everything and star.res and star.child_count and not star.asks("x")
    empty = didl.Filter.parse("")
    assert not empty.res and not empty.wants("dc:date")


NASTY = 'Tom & Jerry <Uncut> "Ré" — 東京 \x01'


def _parse(doc: str) -> ET.Element:
    return ET.fromstring(doc)


def test_didl_escapes_titles_and_urls() -> None:
    view = didl.ItemView(
        id="it-1",
        parent_id="movies",
        title=NASTY,
        date="2001-01-01",
        resources=[
            didl.Res(
                "http://10.0.0.1:8200/stream/it-1?a=1&b=2",
                "http-get:*:video/mp4:DLNA.ORG_OP=01",
                size=10,
                duration="0:00:02.000",
                resolution="320x240",
            )
        ],
        caption=("http://10.0.0.1:8200/subtitles/it-1/0.srt", "srt"),
        album_art=("http://x/a.jpg", "JPEG_TN"),
    )
    doc = didl.document([didl.item_xml(view, didl.Filter.parse("*"))])
    root = _parse(doc)
    item = root.find("d:item", DIDL_NS)
    assert item is not None
    assert item.findtext("dc:title", namespaces=DIDL_NS) == NASTY.replace("\x01", "")
    res = item.find("d:res", DIDL_NS)
    assert res is not None and res.text == "http://10.0.0.1:8200/stream/it-1?a=1&b=2"
    assert res.attrib == {
        "protocolInfo": "http-get:*:video/mp4:DLNA.ORG_OP=01",
        "size": "10",
        "duration": "0:00:02.000",
        "resolution": "320x240",
    }
    cap = item.find("sec:CaptionInfoEx", DIDL_NS)
    assert cap is not None and cap.attrib[f"{{{DIDL_NS['sec']}}}type"] == "srt"
    art = item.find("upnp:albumArtURI", DIDL_NS)
    assert art is not None and art.attrib[f"{{{DIDL_NS['dlna']}}}profileID"] == "JPEG_TN"


def test_didl_filter_limits_what_is_written() -> None:
    view = didl.ItemView(
        "it-1", "movies", "A", date="2001-01-01",
        resources=[didl.Res("http://h/s", "http-get:*:video/mp4:*", size=5, duration="0:00:01")],
    )  # fmt: skip
    minimal = _parse(didl.document([didl.item_xml(view, didl.Filter.parse(""))]))
    item = minimal.find("d:item", DIDL_NS)
    assert item is not None
    assert [c.tag.split("}")[1] for c in item] == ["title", "class"]
    sized = _parse(didl.document([didl.item_xml(view, didl.Filter.parse("res@size"))]))
    res = sized.find("d:item/d:res", DIDL_NS)
    assert res is not None and set(res.attrib) == {"protocolInfo", "size"}
    container = didl.ContainerView("movies", "0", "Movies & <more>", 7)
    c = _parse(didl.document([didl.container_xml(container, didl.Filter.parse("@childCount"))]))
    el = c.find("d:container", DIDL_NS)
    assert el is not None and el.attrib["childCount"] == "7"
    assert el.findtext("dc:title", namespaces=DIDL_NS) == "Movies & <more>"


def test_envelope_reading() -> None:
    cds = "urn:schemas-upnp-org:service:ContentDirectory:1"
    body = (
        b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<s:Body><u:Browse xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1">'
        b"<ObjectID>0</ObjectID><Filter>*</Filter></u:Browse></s:Body></s:Envelope>"
    )
    for header in (f'"{cds}#Browse"', f"{cds}#Browse", f' " {cds}#Browse" '):
        name, args = parse_envelope(body, header, cds)
        assert name == "Browse" and args == {"ObjectID": "0", "Filter": "*"}
    # another version of our service and another spelling of its type are ours
    assert parse_envelope(body, f'"{cds.upper()}#Browse"', cds.replace(":1", ":2"))[0] == "Browse"
    assert parse_envelope(body, f'"{cds[:-1]}3#Browse"', cds)[0] == "Browse"
    no_ns = body.replace(b' xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1"', b"")
    assert parse_envelope(no_ns.replace(b"u:", b""), f'"{cds}#Browse"', cds)[0] == "Browse"
    for bad, header in (
        (b"<not xml", f"{cds}#Browse"),
        (b"", f"{cds}#Browse"),
        (b"<a/>", f"{cds}#Browse"),
        (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>', f"{cds}#Browse"),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/>'
            b"</s:Envelope>",
            f"{cds}#Browse",
        ),
        (body, f'"{cds}#Search"'),  # header and body disagree
        (body, None),  # no SOAPACTION
        (body, ""),
        (body, '"Browse"'),  # no service#action
        (body, f'"{cds}#"'),
        (body, '"urn:schemas-upnp-org:service:ConnectionManager:1#Browse"'),  # other service
        (body, f'"{cds[:-1]}x#Browse"'),  # no version number
        (body.replace(b"ContentDirectory:1", b"AVTransport:1"), f'"{cds}#Browse"'),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', f"{cds}#Browse"),  # defusedxml refuses
    ):
        with pytest.raises(SoapFault) as e:
            parse_envelope(bad, header, cds)
        assert (e.value.code, e.value.status) == (401, 400), (bad, header)


def test_fault_is_a_upnp_error() -> None:
    ns = {"u": "urn:schemas-upnp-org:control-1-0"}
    for status in (500, 400):
        resp = fault_response(701, "No such object <x>", status)
        assert resp.status == status and resp.content_type == "text/xml"
        assert isinstance(resp.body, bytes)
        root = ET.fromstring(resp.body)
        assert root.findtext(".//u:errorCode", namespaces=ns) == "701"
        assert root.findtext(".//u:errorDescription", namespaces=ns) == "No such object <x>"
    assert fault_response(701, "x").status == 500


def test_description_has_dlna_and_samsung_elements() -> None:
    xml = device_description("uuid:abc", "SOKOUL (den & co)", "1.0", [], "abc")
    root = ET.fromstring(xml)
    ns = {"d": "urn:schemas-upnp-org:device-1-0", "dlna": "urn:schemas-dlna-org:device-1-0",
          "sec": "http://www.sec.co.kr/dlna"}  # fmt: skip
    dev = root.find("d:device", ns)
    assert dev is not None
    assert dev.findtext("dlna:X_DLNADOC", namespaces=ns) == "DMS-1.50"
    assert "getCaptionInfo.sec" in (dev.findtext("sec:ProductCap", namespaces=ns) or "")
    assert dev.findtext("d:friendlyName", namespaces=ns) == "SOKOUL (den & co)"
    assert (
        dev.findtext("d:deviceType", namespaces=ns) == "urn:schemas-upnp-org:device:MediaServer:1"
    )


def _png(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", width, height)


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHH", 11, 8, height, width) + b"\x01\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def test_image_sizes_and_profiles() -> None:
    assert image_size(_png(300, 450)) == ("png", 300, 450)
    assert image_size(_jpeg(1000, 1500)) == ("jpeg", 1000, 1500)
    assert image_size(b"GIF89a....") is None and image_size(b"\xff\xd8\x00") is None
    assert dlna_profile("jpeg", 160, 120) == "JPEG_TN"
    assert dlna_profile("jpeg", 640, 480) == "JPEG_SM"
    assert dlna_profile("jpeg", 1024, 768) == "JPEG_MED"
    assert dlna_profile("jpeg", 1000, 1500) == "JPEG_LRG"
    assert dlna_profile("png", 300, 450) == "PNG_LRG"


def test_find_artwork_by_name(tmp_path: Path) -> None:
    video = tmp_path / "movie" / "Film (2001).mkv"
    video.parent.mkdir()
    video.write_bytes(b"")
    assert find_artwork(video) is None
    (video.parent / "FOLDER.JPG").write_bytes(_jpeg(100, 100))
    (video.parent / "notes.txt").write_text("x")
    art = find_artwork(video)
    assert art is not None and art.path.name == "FOLDER.JPG" and art.profile == "JPEG_TN"
    (video.parent / "Film (2001).png").write_bytes(_png(500, 750))  # the file's own wins
    art = find_artwork(video)
    assert art is not None and art.mime == "image/png" and art.profile == "PNG_LRG"
    (video.parent / "Film (2001).png").unlink()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(_jpeg(10, 10))
    (video.parent / "FOLDER.JPG").unlink()
    (video.parent / "poster.jpg").symlink_to(outside)  # a link out of the folder is ignored
    assert find_artwork(video) is None


def test_sort_criteria_reading() -> None:
    from sokoul_appliance.dlna.sort import SORT_CAPABILITIES, Order, parse_sort

    assert parse_sort("+dc:title") == Order("dc:title", "title", False, False)
    assert parse_sort("-dc:title") == Order("dc:title", "title", True, True)
    assert parse_sort("dc:title") == Order("dc:title", "title", False, False)  # no sign: +
    # the library's 'added' is newest first: -dc:date reads it as it is, +dc:date backwards
    assert parse_sort("-dc:date") == Order("dc:date", "added", False, True)
    assert parse_sort("+dc:date") == Order("dc:date", "added", True, False)
    assert parse_sort("+upnp:episodeNumber") == Order("upnp:episodeNumber", "episode", False, False)
    assert parse_sort("-upnp:originalTrackNumber") == Order(
        "upnp:originalTrackNumber", "episode", True, True
    )
    # the first property we sort by decides; unknown ones and junk are skipped
    assert parse_sort("+upnp:class, -dc:title,+dc:date") == Order("dc:title", "title", True, True)
    assert parse_sort(" - DC:TITLE ") == Order("dc:title", "title", True, True)
    for nothing in ("", None, ",,", "+", "-", "+upnp:artist", "+res@size,-upnp:album"):
        assert parse_sort(nothing) is None, nothing
    assert SORT_CAPABILITIES.split(",") == [
        "dc:title", "dc:date", "upnp:episodeNumber", "upnp:originalTrackNumber"
    ]  # fmt: skip
