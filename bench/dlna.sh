#!/usr/bin/env bash
# DLNA bench: Browse latency (100-object pages in a 20k-item library) and scan time, ours vs
# minidlna on the same generated files; streaming throughput of a 1 GiB file, ours vs nginx.
# Runs as root: both servers live in network namespaces this script creates (SSDP never on the
# machine's real interfaces) and are stopped by PID. Details: bench/dlna_bench.py.
#   bench/dlna.sh [--items 20000] [--pages 200] [--gib 1] [--rounds 3] [--json FILE]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
[ "$(id -u)" = 0 ] || { echo "bench/dlna.sh: run as root (network namespaces)" >&2; exit 1; }
for tool in /usr/sbin/minidlnad /usr/sbin/nginx curl ffmpeg ffprobe; do
  command -v "$tool" >/dev/null || { echo "bench/dlna.sh: $tool is missing" >&2; exit 1; }
done
exec "$PY" "$REPO/bench/dlna_bench.py" "$@"
