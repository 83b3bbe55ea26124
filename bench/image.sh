#!/usr/bin/env bash
# Image benchmark: our qemu-arm64 image vs a bare Debian image built by the same pipeline
# without the appliance (`--bare`), in one run, on this machine.
# Prints compressed/uncompressed size, build time, boot time and the ratios.
#   bench/image.sh          cold: both base rootfs built from scratch in a private cache
#   bench/image.sh --warm   reuse the normal base rootfs cache (build time = customize + disk)
# Boot figure: ours = power-on to /api/health with first boot done; bare = power-on to the SSH
# banner (bare Debian has no panel). Ours' power-on to SSH is printed too, like for like.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
mode=cold
[ "${1:-}" = --warm ] && mode=warm
work=$(mktemp -d /var/tmp/sokoul-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cache_args=()
if [ $mode = cold ]; then
  export SOKOUL_CACHE_DIR="$work/cache"
  cache_args=(--fresh)
fi
echo "bench/image.sh ($mode) $(date -u +%FT%TZ) on $(nproc) cores, $(uname -m); work $work"

declare -A build_s size_c size_r boot_s ssh_s
for flavour in appliance bare; do
  flag=(); [ $flavour = bare ] && flag=(--bare)
  t0=$SECONDS
  "$REPO/build.sh" image --board qemu-arm64 --out "$work/$flavour" "${flag[@]}" "${cache_args[@]}" \
    > "$work/$flavour-build.log" 2>&1 || { tail -30 "$work/$flavour-build.log"; exit 1; }
  build_s[$flavour]=$((SECONDS - t0))
  img=$(ls "$work/$flavour"/*.img.zst)
  manifest=$(ls "$work/$flavour"/*.manifest.json)
  size_c[$flavour]=$(stat -c %s "$img")
  size_r[$flavour]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image"]["raw_bytes"])' "$manifest")
  "$REPO/build.sh" boot "$img" --check "${flag[@]}" > "$work/$flavour-boot.log" 2>&1 ||
    { tail -40 "$work/$flavour-boot.log"; exit 1; }
  boot_s[$flavour]=$(sed -n 's/^BOOT-TO-HEALTHY-SECONDS //p' "$work/$flavour-boot.log")
  ssh_s[$flavour]=$(sed -n 's/^BOOT-TO-SSH-SECONDS //p' "$work/$flavour-boot.log")
  echo "$flavour: build ${build_s[$flavour]} s, ${size_c[$flavour]} bytes compressed, ${size_r[$flavour]} raw, healthy ${boot_s[$flavour]:--} s, ssh ${ssh_s[$flavour]:--} s"
done

python3 - "${size_c[appliance]}" "${size_r[appliance]}" "${build_s[appliance]}" "${boot_s[appliance]}" "${ssh_s[appliance]}" \
          "${size_c[bare]}" "${size_r[bare]}" "${build_s[bare]}" "${ssh_s[bare]}" "$mode" <<'PY'
import sys
ac, ar, ab, ah, ass, bc, br, bb, bs, mode = sys.argv[1:]
ac, ar, bc, br = (int(x) for x in (ac, ar, bc, br))
ab, ah, ass, bb, bs = (float(x) for x in (ab, ah, ass, bb, bs))
print()
print(f"| measure | appliance | bare Debian | ratio |")
print(f"|---|---|---|---|")
print(f"| compressed image (MB) | {ac/1e6:.0f} | {bc/1e6:.0f} | {ac/bc:.2f} |")
print(f"| uncompressed image (MB) | {ar/1e6:.0f} | {br/1e6:.0f} | {ar/br:.2f} |")
print(f"| {mode} build (s) | {ab:.0f} | {bb:.0f} | {ab/bb:.2f} |")
print(f"| power-on to SSH (s) | {ass:.1f} | {bs:.1f} | {ass/bs:.2f} |")
print(f"| boot ratio: appliance healthy {ah:.1f} s / bare SSH {bs:.1f} s | | | {ah/bs:.2f} |")
print()
print(f"targets: compressed <= 350 MB: {'PASS' if ac <= 350e6 else 'FAIL'}; "
      f"boot ratio <= 1.3: {'PASS' if ah/bs <= 1.3 else 'FAIL'}")
PY
