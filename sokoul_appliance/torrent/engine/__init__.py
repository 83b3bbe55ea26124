"""The torrent engine process: one libtorrent session behind a Unix socket.

``python -m sokoul_appliance.torrent.engine --state DIR --socket PATH --downloads DIR``
"""
