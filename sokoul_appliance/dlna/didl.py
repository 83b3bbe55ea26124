"""DIDL-Lite writing: containers and video items, the Filter argument, XML escaping.

Written as strings (no tree building: a 100-item page is ~100 small templates); every text
and attribute value goes through ``text()`` / ``attr()``, which escape the five XML specials
and drop the control characters XML 1.0 forbids (file names can hold them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

DIDL_OPEN = (
    '<DIDL-Lite xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/"'
    ' xmlns:dlna="urn:schemas-dlna-org:metadata-1-0/"'
    ' xmlns:sec="http://www.sec.co.kr/">'
)
DIDL_CLOSE = "</DIDL-Lite>"
FOLDER_CLASS = "object.container.storageFolder"
VIDEO_CLASS = "object.item.videoItem"
# minus ASCII TAB, LF, CR: the C0 controls XML 1.0 does not allow, and the non-characters
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def text(value: str) -> str:
    if not value.isprintable():  # C-fast check; the regex only for the rare control character
        value = _FORBIDDEN.sub("", value)
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def attr(value: str) -> str:
    value = text(value)
    return value.replace('"', "&quot;") if '"' in value else value


@dataclass(frozen=True)
class Filter:
    """The Browse/Search Filter: '*' or a comma list ('dc:title,res@size,sec:CaptionInfoEx').
    id, parentID, restricted, dc:title and upnp:class are always written."""

    everything: bool
    names: frozenset[str] = field(default_factory=frozenset)

    @staticmethod
    def parse(value: str) -> Filter:
        names = frozenset(n.strip() for n in value.split(",") if n.strip())
        return Filter("*" in names, names)

    def wants(self, name: str) -> bool:
        return self.everything or name in self.names

    def asks(self, name: str) -> bool:
        """Named explicitly (a '*' does not count)."""
        return name in self.names

    @property
    def res(self) -> bool:
        return self.everything or any(n == "res" or n.startswith("res@") for n in self.names)

    def res_attr(self, name: str) -> bool:
        return self.everything or f"res@{name}" in self.names or f"@{name}" in self.names

    @cached_property
    def res_attrs(self) -> frozenset[str]:
        """The res attributes this Filter lets through (worked out once per request)."""
        names = ("size", "duration", "resolution", "bitrate", "nrAudioChannels")
        return frozenset(n for n in names if self.res_attr(n))

    @property
    def child_count(self) -> bool:
        return self.everything or bool(
            {"@childCount", "container@childCount", "childCount"} & self.names
        )


@dataclass(slots=True)  # not frozen: made per item per page, frozen __init__ is 2x slower
class Res:
    url: str
    protocol_info: str
    size: int | None = None
    duration: str | None = None  # 'H:MM:SS.mmm'
    resolution: str | None = None  # 'WxH'
    bitrate: int | None = None  # bytes per second (UPnP's unit)
    channels: int | None = None
    subtitle: bool = False  # a caption res (its attributes are not media attributes)


@dataclass(slots=True)
class ItemView:
    id: str
    parent_id: str
    title: str
    cls: str = VIDEO_CLASS
    date: str | None = None  # 'YYYY-01-01' from the year
    resources: Sequence[Res] = ()
    album_art: tuple[str, str] | None = None  # (url, dlna:profileID such as 'JPEG_TN')
    caption: tuple[str, str] | None = None  # (url, sec:type such as 'srt')
    bookmark: int | None = None  # Samsung sec:dcmInfo BM= (seconds); None: not sent


@dataclass(frozen=True)
class ContainerView:
    id: str
    parent_id: str
    title: str
    child_count: int
    cls: str = FOLDER_CLASS
    searchable: bool = True


def container_xml(c: ContainerView, flt: Filter) -> str:
    count = f' childCount="{c.child_count}"' if flt.child_count else ""
    searchable = f' searchable="{1 if c.searchable else 0}"' if flt.wants("@searchable") else ""
    return (
        f'<container id="{attr(c.id)}" parentID="{attr(c.parent_id)}" restricted="1"'
        f"{searchable}{count}><dc:title>{text(c.title)}</dc:title>"
        f"<upnp:class>{c.cls}</upnp:class></container>"
    )


def _res_xml(r: Res, flt: Filter) -> str:
    parts = [f'<res protocolInfo="{attr(r.protocol_info)}"']
    if not r.subtitle:
        wanted = flt.res_attrs
        # numbers need no escaping; duration and resolution are our own digits and ':.x'
        if r.size is not None and "size" in wanted:
            parts.append(f' size="{r.size}"')
        if r.duration is not None and "duration" in wanted:
            parts.append(f' duration="{r.duration}"')
        if r.resolution is not None and "resolution" in wanted:
            parts.append(f' resolution="{r.resolution}"')
        if r.bitrate is not None and "bitrate" in wanted:
            parts.append(f' bitrate="{r.bitrate}"')
        if r.channels is not None and "nrAudioChannels" in wanted:
            parts.append(f' nrAudioChannels="{r.channels}"')
    parts.append(f">{text(r.url)}</res>")
    return "".join(parts)


def item_xml(i: ItemView, flt: Filter) -> str:
    out = [
        f'<item id="{attr(i.id)}" parentID="{attr(i.parent_id)}" restricted="1">'
        f"<dc:title>{text(i.title)}</dc:title><upnp:class>{i.cls}</upnp:class>"
    ]
    if i.date and flt.wants("dc:date"):
        out.append(f"<dc:date>{text(i.date)}</dc:date>")
    if i.album_art and flt.wants("upnp:albumArtURI"):
        url, profile = i.album_art
        out.append(
            f'<upnp:albumArtURI dlna:profileID="{attr(profile)}">{text(url)}</upnp:albumArtURI>'
        )
    if i.caption:
        url, kind = i.caption
        out.append(f'<sec:CaptionInfoEx sec:type="{attr(kind)}">{text(url)}</sec:CaptionInfoEx>')
    if i.bookmark is not None:
        # Samsung's resume point, in minidlna's words (the title after FOLDER= as it does)
        out.append(
            f"<sec:dcmInfo>CREATIONDATE=0,FOLDER={text(i.title)},BM={i.bookmark}</sec:dcmInfo>"
        )
    if flt.res:
        out.extend(_res_xml(r, flt) for r in i.resources)
    out.append("</item>")
    return "".join(out)


def document(objects: Iterable[str]) -> str:
    return DIDL_OPEN + "".join(objects) + DIDL_CLOSE
