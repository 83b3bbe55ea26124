#!/usr/bin/env bash
# Torrent bench: our engine vs aria2c, the same generated multi-file torrent (200 MB by default)
# from the same seeder on loopback (aria2c seeder -> ours, aria2c -> aria2c, libtorrent -> ours):
# time ratio (target >= 0.9 of aria2's speed), time to first playable byte (target <= 2 s) and
# sha256 of every file. Every peer is 127.0.0.1; no DHT, LSD, UPnP or NAT-PMP. Details and
# options: bench/torrent.py; results: bench/RESULTS.md.
#   bench/torrent.sh [--mb 200] [--rounds 1]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
command -v aria2c >/dev/null || { echo "bench/torrent.sh: aria2c is missing (apt-get install aria2)" >&2; exit 1; }
"$PY" -c "import libtorrent" 2>/dev/null || { echo "bench/torrent.sh: $PY has no libtorrent" >&2; exit 1; }
exec "$PY" "$REPO/bench/torrent.py" "$@"
