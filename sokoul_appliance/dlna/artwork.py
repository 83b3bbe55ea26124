"""Artwork beside a video, for DIDL's upnp:albumArtURI: ``<stem>.jpg``, ``<stem>-poster.jpg``,
``poster.jpg``, ``folder.jpg``, ``cover.jpg`` (and .jpeg/.png), the DLNA image profile from the
file's own header (JPEG SOF / PNG IHDR: no decoder, no thumbnailing); without one, the item's
cached TMDB poster when the caller passes it. Blocking: call in a worker thread."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS = (".jpg", ".jpeg", ".png")
FOLDER_NAMES = ("poster", "folder", "cover")
HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Artwork:
    path: Path
    mime: str
    profile: str  # dlna:profileID, e.g. 'JPEG_TN', 'PNG_LRG'


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """('jpeg'|'png', width, height) from the first bytes of an image, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return "jpeg", width, height
        i += 2 + length
    return None


def dlna_profile(kind: str, width: int, height: int) -> str:
    """DLNA image profile by size (DLNA 1.5: TN 160x160, SM 640x480, MED 1024x768)."""
    if kind == "png":
        return "PNG_TN" if width <= 160 and height <= 160 else "PNG_LRG"
    if width <= 160 and height <= 160:
        return "JPEG_TN"
    if width <= 640 and height <= 480:
        return "JPEG_SM"
    if width <= 1024 and height <= 768:
        return "JPEG_MED"
    return "JPEG_LRG"


def read_artwork(path: Path) -> Artwork | None:
    """``path`` as artwork when it is a readable JPEG or PNG, else None."""
    try:
        with path.open("rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError:
        return None
    size = image_size(head)
    if size is None:
        return None
    kind, width, height = size
    mime = "image/png" if kind == "png" else "image/jpeg"
    return Artwork(path, mime, dlna_profile(kind, width, height))


def find_artwork(video: Path, fallback: Path | None = None) -> Artwork | None:
    """The first readable image beside ``video`` by the names above (case-insensitive); a
    symlink leading out of the video's folder is ignored. Costs one folder listing when there
    is no image (no path resolution on that common path). Without one, ``fallback`` (the
    item's cached TMDB poster, ``LibraryManager.tmdb_poster``) when it is a readable image:
    a poster beside the file always wins."""
    found = _beside(video)
    if found is None and fallback is not None:
        return read_artwork(fallback)
    return found


def _beside(video: Path) -> Artwork | None:
    folder = video.parent
    try:
        names = {n.lower(): n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS)}
    except OSError:
        return None
    if not names:
        return None
    stem = video.stem.lower()
    wanted = [f"{stem}{e}" for e in EXTENSIONS] + [f"{stem}-poster{e}" for e in EXTENSIONS]
    wanted += [f"{n}{e}" for n in FOLDER_NAMES for e in EXTENSIONS]
    for name in wanted:
        if name not in names:
            continue
        path = folder / names[name]
        try:
            if path.resolve().parent != folder.resolve():
                continue
        except OSError:
            continue
        art = read_artwork(path)
        if art is not None:
            return art
    return None
