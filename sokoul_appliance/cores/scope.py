"""Running a subprocess in one of SOKOUL's slices.

The torrent engine is a service unit with ``Slice=sokoul-background.slice``; the supervisor's
own short-lived children (ffmpeg for a transcode, ffprobe for the library) are started through
``systemd-run --scope --slice=…``, which registers a transient scope in that slice and then
execs the command itself (same PID: killing it, its pipes and its exit status work as for a
plain child). On a host not booted with systemd (a simulated board, the test machine) there is
no manager to ask: the command runs as it is, where the supervisor runs."""

from __future__ import annotations

from sokoul_appliance.host import Host


def systemd_booted(host: Host) -> bool:
    """sd_booted(): the host runs systemd as its init (``/run/systemd/system`` exists)."""
    return host.live and host.path("/run/systemd/system").is_dir()


def slice_prefix(host: Host, slice_name: str) -> tuple[str, ...]:
    """The argv prefix that runs a command in ``slice_name`` (empty without systemd)."""
    if not systemd_booted(host):
        return ()
    # --collect: the scope goes away even when the command fails (no failed units piling up)
    return ("systemd-run", "--scope", "--quiet", "--collect", f"--slice={slice_name}", "--")
