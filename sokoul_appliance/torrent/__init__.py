"""Torrent room: the libtorrent engine process (``engine/``), its socket protocol, the streaming
window planner, and the supervisor-side manager that drives it (``manager.py``)."""
