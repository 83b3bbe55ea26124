"""The stream room: HTTP range streaming of library items, remux/transcode for clients that
cannot play a file, subtitles, and the seam for files still downloading."""

from sokoul_appliance.stream.service import StreamChoice, StreamService
from sokoul_appliance.stream.source import ByteSource, SourceRegistry
from sokoul_appliance.stream.transcode import SoftwareEncoder, VideoEncoder

__all__ = [
    "ByteSource",
    "SoftwareEncoder",
    "SourceRegistry",
    "StreamChoice",
    "StreamService",
    "VideoEncoder",
]
