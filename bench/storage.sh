#!/usr/bin/env bash
# Storage benchmark: move the same set of files (default 1 GiB in mixed sizes) between two ext4
# filesystems on loop devices with our tier migration (copy + sha256 → syncfs → re-read from
# disk + verify → atomic rename → delete source) and with rsync doing the same job, a durable
# move (`rsync -a --fsync --remove-source-files`): the headline ratio (target ≥ 0.9). Also
# printed: a plain `rsync -a` copy (which neither syncs nor verifies, so with a set smaller
# than the kernel's dirty limit it ends when the bytes are in the page cache) and
# `rsync -a + sync`. Caches are dropped before each run; every result's sha256 is checked.
# Ours is also run with verification against the page cache (no re-read from disk).
# Runs as root; makes its own loop devices and removes them (and its mounts) on exit, also on
# failure.
#   bench/storage.sh [MiB]          SOKOUL_BENCH_ROUNDS=N runs N alternating rounds (default 2)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
MIB=${1:-1024}
ROUNDS=${SOKOUL_BENCH_ROUNDS:-2}
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
[ "$(id -u)" = 0 ] || { echo "bench/storage.sh: run as root (loop devices, mounts)" >&2; exit 1; }
command -v rsync >/dev/null || apt-get install -y -q rsync >/dev/null

work=$(mktemp -d /var/tmp/sokoul-storage-bench.XXXXXX)
root=$work/root
loops=()
cleanup() {
  for m in "$root/srv/cold" "$root/srv/media"; do mountpoint -q "$m" && umount "$m"; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # a signal also runs the EXIT trap (bash does not on its own)
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(could not drop caches)"; }

size=$(( MIB * 5 / 2 + 256 ))M
for tier in media cold; do
  truncate -s "$size" "$work/$tier.img"
  l=$(losetup -f --show "$work/$tier.img"); loops+=("$l")
  mkfs.ext4 -q -F -m 0 -L "bench-$tier" "$l"
  mkdir -p "$root/srv/$tier"
  mount -o noatime "$l" "$root/srv/$tier"
done
echo "bench/storage.sh $(date -u +%FT%TZ) on $(nproc) cores, $(uname -m), $(uname -r); ${MIB} MiB, loops ${loops[*]} in $work"

# the set: library items with mixed file sizes (films, episodes, subtitles/posters)
"$PY" - "$root/srv/media/library" "$MIB" <<'PY'
import os, sys
lib, total = sys.argv[1], int(sys.argv[2]) << 20
plan = [(0.5, 128 << 20), (0.25, 16 << 20), (0.15, 1 << 20), (0.10, 64 << 10)]
n = 0
for share, fsize in plan:
    count = max(1, int(total * share) // fsize)
    per_item = max(1, count // 8)
    for i in range(count):
        d = os.path.join(lib, f"item-{fsize >> 10}k-{i // per_item:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:04d}.bin"), "wb") as f:
            f.write(os.urandom(fsize))
        n += 1
print(f"{n} files in {len(os.listdir(lib))} items")
PY
bytes=$(du -sb "$root/srv/media/library" | cut -f1)
(cd "$root/srv/media/library" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$work/want.sha256"

run_rsync() {
  drop_caches
  local t0 t1 t2
  t0=$(date +%s.%N)
  rsync -a "$root/srv/media/library/" "$root/srv/cold/rsync/"
  t1=$(date +%s.%N)
  sync
  t2=$(date +%s.%N)
  rs_s=$(echo "$t1 - $t0" | bc -l); rs_sync_s=$(echo "$t2 - $t0" | bc -l)
  rm -rf "$root/srv/cold/rsync"; sync
}

run_rsync_move() {   # the same job as ours: a durable move (rsync --fsync, sources removed)
  drop_caches
  local t0 t1
  t0=$(date +%s.%N)
  rsync -a --fsync --remove-source-files "$root/srv/media/library/" "$root/srv/cold/library/"
  find "$root/srv/media/library" -mindepth 1 -type d -empty -delete
  t1=$(date +%s.%N)
  rs_move_s=$(echo "$t1 - $t0" | bc -l)
  (cd "$root/srv/cold/library" && sha256sum --quiet -c "$work/want.sha256") ||
    { echo "sha256 mismatch after rsync's move" >&2; exit 1; }
  # back, untimed
  rsync -a --remove-source-files "$root/srv/cold/library/" "$root/srv/media/library/"
  rm -rf "$root/srv/cold/library"; sync
}

run_ours() {   # $1 = 1: verify from disk (default), 0: verify against the page cache
  # move media → cold, check the hashes, move back (untimed) for the next round
  drop_caches
  ours_s=$(PYTHONPATH=$REPO "$PY" - "$root" "$work/journal.db" to_cold "$1" <<'PY'
import asyncio, os, sys, time
from pathlib import Path
from sokoul_appliance.host import Host
from sokoul_appliance.storage.migration import MigrationOptions, Migrator
from sokoul_appliance.store.database import Store

async def main() -> None:
    root, db, direction = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    src = "/srv/media/library" if direction == "to_cold" else "/srv/cold/library"
    store = Store(db)
    await store.start()
    host = Host(root)
    items = sorted(os.listdir(host.path(src)))
    t0 = time.monotonic()
    migrator = Migrator(host, store, MigrationOptions(verify_from_disk=sys.argv[4] == "1"))
    moved, errors = await migrator.move_many([f"library/{n}" for n in items], direction)
    assert len(moved) == len(items) and not errors, errors
    print(f"{time.monotonic() - t0:.3f}")
    await store.stop()

asyncio.run(main())
PY
)
  (cd "$root/srv/cold/library" && sha256sum --quiet -c "$work/want.sha256") ||
    { echo "sha256 mismatch after our migration" >&2; exit 1; }
  [ -z "$(ls -A "$root/srv/media/library")" ] || { echo "sources left behind" >&2; exit 1; }
  PYTHONPATH=$REPO "$PY" - "$root" "$work/journal.db" to_media >/dev/null <<'PY'
import asyncio, os, sys
from pathlib import Path
from sokoul_appliance.host import Host
from sokoul_appliance.storage.migration import Migrator
from sokoul_appliance.store.database import Store

async def main() -> None:
    store = Store(Path(sys.argv[2]))
    await store.start()
    host = Host(Path(sys.argv[1]))
    names = sorted(os.listdir(host.path("/srv/cold/library")))
    await Migrator(host, store).move_many([f"library/{n}" for n in names], sys.argv[3])
    await store.stop()

asyncio.run(main())
PY
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "moving the set back failed" >&2; exit 1; }
}

mbps() { echo "scale=1; $bytes / 1048576 / $1" | bc -l; }
printf '%-6s %-26s %10s %10s\n' round tool seconds MiB/s
for r in $(seq 1 "$ROUNDS"); do
  run_rsync
  run_rsync_move
  run_ours 1
  printf '%-6s %-26s %10.2f %10s\n' "$r" "rsync -a" "$rs_s" "$(mbps "$rs_s")"
  printf '%-6s %-26s %10.2f %10s\n' "$r" "rsync -a + sync" "$rs_sync_s" "$(mbps "$rs_sync_s")"
  printf '%-6s %-26s %10.2f %10s\n' "$r" "rsync move (--fsync)" "$rs_move_s" "$(mbps "$rs_move_s")"
  tot_rs_move=$(echo "${tot_rs_move:-0} + $rs_move_s" | bc -l)
  printf '%-6s %-26s %10.2f %10s\n' "$r" "ours (verify from disk)" "$ours_s" "$(mbps "$ours_s")"
  tot_ours=$(echo "${tot_ours:-0} + $ours_s" | bc -l)
  run_ours 0
  printf '%-6s %-26s %10.2f %10s\n' "$r" "ours (verify from cache)" "$ours_s" "$(mbps "$ours_s")"
  tot_cache=$(echo "${tot_cache:-0} + $ours_s" | bc -l)
  tot_rs=$(echo "${tot_rs:-0} + $rs_s" | bc -l)
  tot_rs_sync=$(echo "${tot_rs_sync:-0} + $rs_sync_s" | bc -l)
done
echo "bytes moved per run: $bytes ($(echo "scale=1; $bytes / 1048576" | bc) MiB), sha256 verified"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mean throughput: ours $(mbps "$(echo "$tot_ours / $ROUNDS" | bc -l)") MiB/s" \
  "(verify from cache: $(mbps "$(echo "$tot_cache / $ROUNDS" | bc -l)") MiB/s)," \
  "rsync -a $(mbps "$(echo "$tot_rs / $ROUNDS" | bc -l)") MiB/s," \
  "rsync -a + sync $(mbps "$(echo "$tot_rs_sync / $ROUNDS" | bc -l)") MiB/s," \
  "rsync move --fsync $(mbps "$(echo "$tot_rs_move / $ROUNDS" | bc -l)") MiB/s"
echo "ratio ours / rsync -a --fsync --remove-source-files (the same durable move): $(echo "scale=3; $tot_rs_move / $tot_ours" | bc -l)  (target >= 0.9)"
echo "ratio ours / rsync -a:        $(echo "scale=3; $tot_rs / $tot_ours" | bc -l)  (a copy into the page cache)"
echo "ratio ours / (rsync -a + sync): $(echo "scale=3; $tot_rs_sync / $tot_ours" | bc -l)"
echo "ratio ours verifying from cache / rsync -a: $(echo "scale=3; $tot_rs / $tot_cache" | bc -l)," \
  "/ (rsync -a + sync): $(echo "scale=3; $tot_rs_sync / $tot_cache" | bc -l)"
