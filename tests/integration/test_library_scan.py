"""A generated library on disk, scanned with real ffprobe into a real SQLite: queries, FTS,
incremental rescans, renames that keep ids, unavailable tiers, organizing downloads."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import pytest
from prometheus_client import CollectorRegistry

from sokoul_appliance.bus import EventBus
from sokoul_appliance.host import Host
from sokoul_appliance.library import LibraryManager, OrganizeError
from sokoul_appliance.library.model import ROOT_FOLDER
from sokoul_appliance.store.database import Store
from tests.media_samples import SRT, make_video, need_ffmpeg

MEDIA = "/srv/media/library"
COLD = "/srv/cold/library"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_ffmpeg()
    d = tmp_path_factory.mktemp("samples")
    return {
        "mp4": make_video(d / "a.mp4"),
        "mkv_hevc": make_video(d / "b.mkv", vcodec="libx265"),
        "mkv": make_video(d / "c.mkv", seconds=1.0),
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "state" / "sokoul.db")
    await s.start()
    yield s
    await s.stop()


def _place(root: Path, rel: str, sample: Path) -> Path:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample, target)
    return target


@pytest.fixture
def tree(tmp_path: Path, samples: dict[str, Path]) -> Path:
    root = tmp_path / "root"
    lib = root / MEDIA.lstrip("/")
    _place(lib, "Movies/Inception (2010)/Inception (2010).mp4", samples["mp4"])
    (lib / "Movies/Inception (2010)/Inception (2010).en.srt").write_text(SRT)
    (lib / "Movies/Inception (2010)/Inception (2010).fr.vtt").write_text("WEBVTT\n")
    _place(lib, "Movies/The Dark Knight (2008)/The.Dark.Knight.2008.1080p.mkv", samples["mkv"])
    _place(lib, "Shows/Severance/Season 02/Severance.S02E10.Cold.Harbor.mkv", samples["mkv_hevc"])
    _place(lib, "Shows/Severance/Season 02/Severance.S02E09.mkv", samples["mkv"])
    _place(lib, "Shows/Severance/Season 01/Severance.S01E01.mkv", samples["mkv"])
    _place(lib, "Movies/Broken (2020)/Broken.2020.mkv", samples["mkv"]).write_bytes(b"not media")
    _place(lib, "Movies/Inception (2010)/sample.mkv", samples["mkv"])  # a sample: skipped
    (lib / "Movies/partial.mkv.part").write_bytes(b"x")
    os.makedirs(os.fsencode(lib) + b"/Movies/Bad \xff (2001)")  # not UTF-8: skipped
    (Path(os.fsdecode(os.fsencode(lib) + b"/Movies/Bad \xff (2001)")) / "Bad.mkv").write_bytes(b"")
    cold = root / COLD.lstrip("/")
    _place(cold, "Movies/Heat (1995)/Heat.1995.1080p.BluRay.mkv", samples["mkv"])
    return root


def _manager(root: Path, store: Store, **kw: object) -> LibraryManager:
    return LibraryManager(
        Host(root), store, EventBus(), CollectorRegistry(), roots=(MEDIA, COLD), **kw
    )  # type: ignore[arg-type]


async def test_scan_finds_parses_and_probes_the_library(tree: Path, store: Store) -> None:
    lib = _manager(tree, store)
    result = await lib.scan()
    assert (result.added, result.changed, result.removed, result.unchanged) == (7, 0, 0, 0)
    assert result.probe_failures == 1
    total, movies = await lib.items(kind="movie")
    assert total == 4
    assert [m.display_title for m in movies] == [
        "Broken (2020)",
        "Heat (1995)",
        "Inception (2010)",
        "The Dark Knight (2008)",
    ]
    inception = movies[2]
    assert inception.id.startswith("it-") and "/" not in inception.id
    assert inception.container is not None and "mp4" in inception.container
    assert inception.video_codec == "h264"
    assert (inception.width, inception.height) == (320, 240)
    assert inception.duration is not None and 1.9 < inception.duration < 2.2
    assert inception.media is not None and [a.codec for a in inception.media.audio] == ["aac"]
    assert inception.mime_type == "video/mp4"
    subs = inception.subtitles()
    assert [(s.n, s.format, s.language, s.source) for s in subs] == [
        (0, "srt", "en", "sidecar"),
        (1, "vtt", "fr", "sidecar"),
    ]
    assert movies[1].root == COLD
    broken = movies[0]
    assert broken.probe_error is not None and broken.duration is None

    shows = await lib.shows()
    assert [(s.title, s.seasons, s.episodes) for s in shows] == [("Severance", 2, 3)]
    seasons = await lib.seasons(shows[0].id)
    assert [(s.number, s.episodes) for s in seasons] == [(1, 1), (2, 2)]
    assert await lib.season(seasons[1].id) == seasons[1]
    assert await lib.resolve(seasons[1].id) == seasons[1]
    assert await lib.resolve(shows[0].id) == shows[0]
    assert await lib.resolve("se-0000") is None
    assert await lib.resolve("../x") is None
    eps = await lib.episodes(shows[0].id, 2)
    assert [(e.episode, e.episode_title, e.video_codec) for e in eps] == [
        (9, None, "h264"),
        (10, "Cold Harbor", "hevc"),
    ]
    assert eps[1].display_title == "Severance - S02E10 - Cold Harbor"

    found = await lib.search("dark kni")
    assert [i.title for i in found] == ["The Dark Knight"]
    assert [i.episode for i in await lib.search("cold harbor")] == [10]
    assert len(await lib.search("severance")) == 3
    assert await lib.search("nothing like this") == []
    assert [i.title for i in await lib.search("inceptoin")] == ["Inception"]  # a typo
    assert len(await lib.search("severence")) == 3

    top = await lib.folder(ROOT_FOLDER)
    assert top is not None and top.children == 2  # Movies, Shows
    names = [f.name for f in await lib.subfolders(ROOT_FOLDER)]
    assert names == ["Movies", "Shows"]
    movies_dir = (await lib.subfolders(ROOT_FOLDER))[0]
    assert [f.name for f in await lib.subfolders(movies_dir.id)] == [
        "Broken (2020)",
        "Heat (1995)",
        "Inception (2010)",
        "The Dark Knight (2008)",
    ]
    recent = await lib.recently_added(limit=3)
    assert len(recent) == 3
    assert await lib.item(inception.id) == inception
    assert await lib.resolve(inception.id) == inception
    assert await lib.resolve(movies_dir.id) == movies_dir
    assert await lib.item("../../etc/passwd") is None
    assert await lib.item("it-0000000000000000") is None

    snap = lib.snapshot()
    assert snap["counts"] == {"movie": 4, "episode": 3, "other": 0}
    assert snap["state"] == "ok"
    assert snap["update_id"] == 2  # the items (browsable), then their probe facts
    samples = {
        s.labels["kind"]: s.value
        for m in lib.metrics.items.collect()
        for s in m.samples
    }  # fmt: skip
    assert samples == {"movie": 4.0, "episode": 3.0, "other": 0.0}


async def test_rescans_are_incremental_and_keep_ids(tree: Path, store: Store) -> None:
    probes: list[Path] = []
    from sokoul_appliance.library.probe import probe_file

    async def counting_probe(host: Host, path: Path):  # type: ignore[no-untyped-def]
        probes.append(path)
        return await probe_file(host, path)

    lib = _manager(tree, store, probe=counting_probe)
    await lib.scan()
    assert len(probes) == 7
    before = {i.rel_path: i.id for i in (await lib.items(limit=100))[1]}

    again = await lib.scan()
    assert (again.added, again.changed, again.unchanged) == (0, 0, 7)
    assert len(probes) == 7 and lib.update_id == 2

    lib_dir = tree / MEDIA.lstrip("/")
    old = lib_dir / "Shows/Severance/Season 01/Severance.S01E01.mkv"
    new = lib_dir / "Shows/Severance/Season 01/Severance - S01E01 - Good News.mkv"
    os.rename(old, new)
    st = (lib_dir / "Movies/The Dark Knight (2008)/The.Dark.Knight.2008.1080p.mkv").stat()
    os.utime(
        lib_dir / "Movies/The Dark Knight (2008)/The.Dark.Knight.2008.1080p.mkv",
        ns=(st.st_atime_ns, st.st_mtime_ns + 10**9),
    )
    (lib_dir / "Movies/Broken (2020)/Broken.2020.mkv").unlink()
    third = await lib.scan()
    assert (third.moved, third.changed, third.removed, third.added) == (1, 1, 1, 0)
    assert len(probes) == 9
    after = {i.rel_path: i.id for i in (await lib.items(limit=100))[1]}
    renamed = "Shows/Severance/Season 01/Severance - S01E01 - Good News.mkv"
    assert after[renamed] == before["Shows/Severance/Season 01/Severance.S01E01.mkv"]
    dark = "Movies/The Dark Knight (2008)/The.Dark.Knight.2008.1080p.mkv"
    assert after[dark] == before[dark]
    assert len(after) == 6
    assert lib.update_id == 4  # the changes, then the probes of the renamed and changed files

    # the cold tier goes away: its items stay, unavailable; they come back with the same id
    cold = tree / COLD.lstrip("/")
    cold.rename(tree / "cold-away")
    await lib.scan()
    assert lib.snapshot()["state"] == "degraded"
    assert lib.snapshot()["counts"]["movie"] == 2
    total, _ = await lib.items(include_unavailable=True)
    assert total == 6
    (tree / "cold-away").rename(cold)
    await lib.scan()
    assert lib.snapshot()["counts"]["movie"] == 3
    assert {i.rel_path: i.id for i in (await lib.items(limit=100))[1]} == after

    # an item moved by the storage room from cold to media keeps its id
    heat = "Movies/Heat (1995)/Heat.1995.1080p.BluRay.mkv"
    (lib_dir / heat).parent.mkdir(parents=True)
    shutil.move(cold / heat, lib_dir / heat)
    await lib.scan()
    moved = {i.rel_path: i for i in (await lib.items(limit=100))[1]}
    assert moved[heat].id == after[heat] and moved[heat].root == MEDIA


async def test_organize_links_downloads_into_the_library(
    tmp_path: Path, store: Store, samples: dict[str, Path]
) -> None:
    root = tmp_path / "root"
    downloads = root / "srv/media/downloads"
    rel = "Inception.2010.1080p.BluRay.x264-GRP"
    _place(downloads, f"{rel}/inception.2010.1080p.mkv", samples["mkv"])
    (downloads / rel / "Subs").mkdir()
    (downloads / rel / "Subs/English.srt").write_text(SRT)
    _place(downloads, f"{rel}/Sample/inception-sample.mkv", samples["mkv"])
    _place(downloads, "Severance.S02E10.Cold.Harbor.2160p.WEB-DL-GRP.mkv", samples["mkv_hevc"])
    (root / "srv/media/library").mkdir(parents=True)
    lib = _manager(root, store)

    ids = await lib.organize_download(f"/srv/media/downloads/{rel}")
    assert len(ids) == 1
    item = await lib.item(ids[0])
    assert item is not None
    assert item.rel_path == "Movies/Inception (2010)/Inception (2010).mkv"
    assert [(t.format, t.source) for t in item.subtitles()] == [("srt", "sidecar")]
    target = root / "srv/media/library" / item.rel_path
    source = downloads / rel / "inception.2010.1080p.mkv"
    assert os.path.samefile(target, source)  # a hard link: the torrent keeps seeding
    assert (target.parent / "Inception (2010).en.srt").read_text() == SRT

    ep_ids = await lib.organize_download(
        "/srv/media/downloads/Severance.S02E10.Cold.Harbor.2160p.WEB-DL-GRP.mkv", link=False
    )
    ep = await lib.item(ep_ids[0])
    assert ep is not None
    assert ep.rel_path == "Shows/Severance/Season 02/Severance - S02E10 - Cold Harbor.mkv"
    assert not (downloads / "Severance.S02E10.Cold.Harbor.2160p.WEB-DL-GRP.mkv").exists()

    # organizing again is harmless; a different file under the same name is refused
    assert await lib.organize_download(f"/srv/media/downloads/{rel}") == ids
    other = downloads / "Inception.2010.720p.WEB-GRP.mkv"
    shutil.copyfile(samples["mp4"], other)
    with pytest.raises(OrganizeError, match="already in the library"):
        await lib.organize_download("/srv/media/downloads/Inception.2010.720p.WEB-GRP.mkv")
    with pytest.raises(ValueError):
        await lib.organize_download("/srv/media/library/Movies")
    with pytest.raises(ValueError):
        await lib.organize_download("/srv/media/downloads/../library")


async def test_start_scans_and_stop_ends_the_tasks(tree: Path, store: Store) -> None:
    import asyncio

    lib = _manager(tree, store)
    assert lib.status()[0] == "starting"
    await lib.start()
    for _ in range(200):
        if lib.last_scan is not None:
            break
        await asyncio.sleep(0.05)
    assert lib.status()[0] == "ok"
    assert lib.snapshot()["counts"]["episode"] == 3
    await lib.stop()
    assert lib._tasks == []


async def test_a_finished_download_is_organized_and_announced(
    tmp_path: Path, store: Store, samples: dict[str, Path]
) -> None:
    import asyncio

    from sokoul_appliance.events import DownloadFinished, LibraryUpdated

    root = tmp_path / "root"
    downloads = root / "srv/media/downloads"
    pack = downloads / "Severance.S02.COMPLETE.1080p.WEB-DL-GRP"
    _place(pack, "Severance.S02E01.1080p.WEB-DL-GRP.mkv", samples["mkv"])
    _place(pack, "Severance.S02E02.1080p.WEB-DL-GRP.mkv", samples["mkv"])
    (pack / "Severance.S02E02.1080p.WEB-DL-GRP.en.srt").write_text(SRT)
    (root / "srv/media/library").mkdir(parents=True)
    bus = EventBus()
    lib = LibraryManager(Host(root), store, bus, CollectorRegistry(), roots=(MEDIA,))
    await lib.start()
    try:
        for _ in range(400):
            if lib.last_scan is not None:
                break
            await asyncio.sleep(0.05)
        assert lib.last_scan is not None and lib.update_id == 0  # empty: nothing announced
        with bus.subscribe(LibraryUpdated) as updates:
            bus.publish(
                DownloadFinished(
                    "ab" * 20,
                    pack.name,
                    (
                        f"/srv/media/downloads/{pack.name}/Severance.S02E01.1080p.WEB-DL-GRP.mkv",
                        str(pack / "Severance.S02E02.1080p.WEB-DL-GRP.mkv"),  # a real path
                        "/etc/passwd",  # not under downloads: ignored
                    ),
                )
            )
            event = await asyncio.wait_for(updates.get(), 30)
    finally:
        await lib.stop()
    assert (event.added, event.removed) == (2, 0)
    assert event.update_id == lib.update_id
    shows = await lib.shows()
    assert [(s.title, s.episodes) for s in shows] == [("Severance", 2)]
    eps = await lib.episodes(shows[0].id, 2)
    assert [e.rel_path for e in eps] == [
        "Shows/Severance/Season 02/Severance - S02E01.mkv",
        "Shows/Severance/Season 02/Severance - S02E02.mkv",
    ]
    assert [len(e.subtitles()) for e in eps] == [0, 1]  # the .srt went with its own episode
    assert lib.snapshot()["organize_problems"] == []


async def test_a_scan_never_holds_the_event_loop(
    tree: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio's debug mode logs every callback that runs longer than slow_callback_duration:
    the walk, guessit and the database work of a scan must happen elsewhere. (ffprobe is a
    subprocess; here a stand-in answers, so that the test times only our own code.)"""
    import asyncio
    import logging

    from sokoul_appliance.library.probe import MediaInfo

    async def quick_probe(host: Host, path: Path) -> MediaInfo:
        await asyncio.sleep(0)
        return MediaInfo("matroska,webm", 1.0, 1000, "h264", 320, 240)

    # 200 more files, so that a walk or guessit on the loop would show
    lib_dir = tree / MEDIA.lstrip("/")
    sample = lib_dir / "Shows/Severance/Season 01/Severance.S01E01.mkv"
    for n in range(200):
        os.link(sample, lib_dir / f"Shows/Severance/Season 01/Severance.S01E{n + 2:02d}.mkv")
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.25  # debug mode itself is slow (a traceback per task)
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        result = await _manager(tree, store, probe=quick_probe).scan()
    finally:
        loop.set_debug(False)
    assert result.added == 207
    slow = [
        r.getMessage() for r in caplog.records if r.name == "asyncio" and " took " in r.getMessage()
    ]
    assert slow == []


def test_organize_refuses_a_move_across_filesystems(tmp_path: Path) -> None:
    """Downloads on one filesystem, the library on another: a sentence, nothing half-copied."""
    import tempfile

    from sokoul_appliance.library.organize import organize

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is not a separate filesystem here")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        download = Path(other) / "Inception.2010.1080p.BluRay.x264-GRP.mkv"
        download.write_bytes(b"x" * 1000)
        with pytest.raises(OrganizeError, match="different filesystems"):
            organize(download, tmp_path / "library")
        assert download.exists()
        assert not list((tmp_path / "library").rglob("*.mkv"))


async def test_storage_events_trigger_a_rescan(tree: Path, store: Store) -> None:
    import asyncio

    from sokoul_appliance.events import StorageItemMoved

    bus = EventBus()
    lib = LibraryManager(Host(tree), store, bus, CollectorRegistry(), roots=(MEDIA, COLD))
    await lib.start()
    try:
        for _ in range(400):
            if lib.last_scan is not None:
                break
            await asyncio.sleep(0.05)
        first = lib.last_scan_at
        assert first is not None
        heat = "Movies/Heat (1995)"
        shutil.move(tree / COLD.lstrip("/") / heat, tree / MEDIA.lstrip("/") / heat)
        bus.publish(StorageItemMoved(f"library/{heat}", "to_media", 1000))
        for _ in range(400):
            if lib.last_scan_at != first and not lib.scanning:
                break
            await asyncio.sleep(0.05)
        assert lib.last_scan_at != first
        (heat_item,) = await lib.search("heat")
        assert heat_item.root == MEDIA
    finally:
        await lib.stop()


async def test_inotify_notices_a_new_file_without_a_periodic_scan(
    tree: Path, store: Store, samples: dict[str, Path]
) -> None:
    import asyncio

    lib = LibraryManager(
        Host(tree), store, EventBus(), CollectorRegistry(), roots=(MEDIA, COLD),
        rescan_interval=3600, watch_debounce=0.2,
    )  # fmt: skip
    await lib.start()
    try:
        for _ in range(400):
            if lib.last_scan is not None:
                break
            await asyncio.sleep(0.05)
        watch = lib.snapshot()["watch"]
        assert watch["active"] is True and watch["folders"] >= 10
        new = tree / MEDIA.lstrip("/") / "Movies/Jaws (1975)"
        new.mkdir()
        shutil.copyfile(samples["mkv"], new / "Jaws (1975).mkv")
        for _ in range(200):
            if await lib.search("jaws"):
                break
            await asyncio.sleep(0.05)
        (jaws,) = await lib.search("jaws")
        assert (jaws.title, jaws.year) == ("Jaws", 1975)
        for _ in range(200):  # browsable first; the background prober fills in its streams
            (jaws,) = await lib.search("jaws")
            if jaws.video_codec is not None:
                break
            await asyncio.sleep(0.05)
        assert jaws.video_codec == "h264" and jaws.media is not None
    finally:
        await lib.stop()


async def test_items_are_browsable_before_their_probe_and_filled_in_by_it(
    tree: Path, store: Store
) -> None:
    """The supervisor's scans write the items first (names and stat) and leave ffprobe to the
    probe pass: pages list them at once, unprobed; the pass fills them in and announces it."""
    import asyncio

    from sokoul_appliance.events import LibraryUpdated
    from sokoul_appliance.library.probe import probe_file

    probes: list[Path] = []

    async def counting_probe(host: Host, path: Path):  # type: ignore[no-untyped-def]
        probes.append(path)
        return await probe_file(host, path)

    bus = EventBus()
    lib = LibraryManager(
        Host(tree), store, bus, CollectorRegistry(), roots=(MEDIA, COLD), watch=False,
        probe=counting_probe,
    )  # fmt: skip
    with bus.subscribe(LibraryUpdated) as updates:
        result = await lib.scan(wait_probed=False)
        assert probes == [] and result.added == 7 and result.probed == 0
        first = await asyncio.wait_for(updates.get(), 5)
        assert (first.update_id, first.added) == (1, 7)
        total, before = await lib.items(kind="movie")
        assert total == 4 and [m.title for m in before][2] == "Inception"
        assert all(m.media is None and m.duration is None for m in before)
        assert all(m.probe_error is None for m in before)  # pending, not failed

        assert await lib.probe_pending() == (7, 1)
        assert len(probes) == 7
        second = await asyncio.wait_for(updates.get(), 5)
        assert (second.update_id, second.added, second.changed) == (2, 0, 7)
        total, after = await lib.items(kind="movie")  # the kept page list is not stale
        assert total == 4 and [m.id for m in after] == [m.id for m in before]
        inception = after[2]
        assert inception.video_codec == "h264" and inception.duration is not None
        assert after[0].probe_error is not None  # Broken: failed once, not retried
        _, again = await lib.items(kind="movie")  # read again: the kept items, no new rows
        assert all(a is b for a, b in zip(again, after, strict=True))
        assert await lib.probe_pending() == (0, 0) and len(probes) == 7
        assert lib.update_id == 2
        with pytest.raises(TimeoutError):  # nothing probed: nothing announced
            await asyncio.wait_for(updates.get(), 0.2)

    # pages are slices of one ordered list: any window agrees with the whole
    _, everything = await lib.items(limit=100)
    for offset, limit in ((0, 3), (3, 3), (6, 3), (2, 4), (7, 5)):
        total, page = await lib.items(offset=offset, limit=limit)
        assert total == 7 and page == everything[offset : offset + limit]
    # a new file is listed after the next scan (the kept list follows the library)
    _place(tree / MEDIA.lstrip("/"), "Movies/Jaws (1975)/Jaws (1975).mkv", probes[0])
    await lib.scan(wait_probed=False)
    total, movies = await lib.items(kind="movie")
    assert total == 5 and "Jaws" in [m.title for m in movies]


async def test_items_probed_by_an_older_probe_are_probed_once_more(
    tree: Path, store: Store
) -> None:
    """A row whose MediaInfo JSON predates probe_version (no level, frame rate, AAC profile…)
    is probed once more by the probe pass, announced like any probe batch, and not again; a
    re-probe that fails keeps the facts the row had."""
    import asyncio
    import json

    from sokoul_appliance.events import LibraryUpdated
    from sokoul_appliance.library.probe import PROBE_VERSION, ProbeError, probe_file

    probes: list[Path] = []
    failing: set[str] = set()

    async def counting_probe(host: Host, path: Path):  # type: ignore[no-untyped-def]
        probes.append(path)
        if path.name in failing:
            raise ProbeError(f"{path.name}: ffprobe took longer than 60 s")
        return await probe_file(host, path)

    bus = EventBus()
    lib = LibraryManager(
        Host(tree), store, bus, CollectorRegistry(), roots=(MEDIA, COLD), watch=False,
        probe=counting_probe,
    )  # fmt: skip
    await lib.scan()
    assert len(probes) == 7
    _, movies = await lib.items(kind="movie")
    inception = next(m for m in movies if m.title == "Inception")
    dark = next(m for m in movies if m.title == "The Dark Knight")
    assert inception.media is not None and inception.media.probe_version == PROBE_VERSION
    assert inception.media.video_level is not None and inception.media.audio[0].profile == "LC"

    def old_format(media_json: str) -> str:  # as the probe wrote it before probe_version
        d = json.loads(media_json)
        for key in ("probe_version", "video_level", "frame_rate", "field_order",
                    "video_bitrate", "ts_packet_size"):  # fmt: skip
            del d[key]
        for a in d["audio"]:
            del a["profile"], a["sample_rate"], a["bitrate"]
        return json.dumps(d, sort_keys=True)

    async with store.transaction() as db:
        for item in (inception, dark):
            row = await (await db.execute(
                "SELECT media FROM library_items WHERE id = ?", (item.id,)
            )).fetchone()  # fmt: skip
            await db.execute(
                "UPDATE library_items SET media = ? WHERE id = ?",
                (old_format(row["media"]), item.id),
            )
    lib._written()  # the test wrote rows behind the manager's back: drop its kept items
    old = await lib.item(inception.id)
    assert old is not None and old.media is not None
    assert old.media.probe_version == 1 and old.media.video_level is None  # old JSON loads
    assert old.media.audio[0].profile is None and old.media.duration is not None

    failing.add(PurePosixPath(dark.rel_path).name)
    probes.clear()
    with bus.subscribe(LibraryUpdated) as updates:
        assert await lib.probe_pending() == (2, 1)
        assert sorted(p.name for p in probes) == sorted(
            PurePosixPath(i.rel_path).name for i in (inception, dark)
        )
        update = await asyncio.wait_for(updates.get(), 5)
        assert update.changed == 2 and update.update_id == lib.update_id
        fresh = await lib.item(inception.id)
        assert fresh is not None and fresh.media is not None
        assert fresh.media.probe_version == PROBE_VERSION
        assert fresh.media.video_level == inception.media.video_level
        assert fresh.media == inception.media
        kept = await lib.item(dark.id)  # its re-probe failed: older facts kept, not retried
        assert kept is not None and kept.probe_error is not None
        assert kept.media is not None and kept.media.probe_version == 1
        assert kept.duration == dark.duration and kept.video_codec == "h264"
        # once: the next pass finds nothing to do and announces nothing
        update_id = lib.update_id
        assert await lib.probe_pending() == (0, 0) and len(probes) == 2
        assert lib.update_id == update_id
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(updates.get(), 0.2)

    # version 3 adds only ts_timestamped: of the version-2 rows, only those of 192-byte TS
    # packets are probed again (the rest would gain nothing from it)
    async with store.transaction() as db:
        for item, packets in ((inception, None), (dark, 192)):
            row = await (await db.execute(
                "SELECT media FROM library_items WHERE id = ?", (item.id,)
            )).fetchone()  # fmt: skip
            d = json.loads(row["media"])
            d.update(probe_version=2, ts_packet_size=packets)
            d.pop("ts_timestamped", None)
            await db.execute(
                "UPDATE library_items SET media = ?, probe_error = NULL WHERE id = ?",
                (json.dumps(d, sort_keys=True), item.id),
            )
    lib._written()
    failing.clear()
    probes.clear()
    assert await lib.probe_pending() == (1, 0)
    assert [p.name for p in probes] == [PurePosixPath(dark.rel_path).name]
    again = await lib.item(dark.id)
    assert again is not None and again.media is not None
    assert again.media.probe_version == PROBE_VERSION
