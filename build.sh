#!/usr/bin/env bash
# SOKOUL appliance: build, boot and test. Run as root on Debian 12 (x86-64 or arm64).
#   ./build.sh                      build the default image (orangepi-6-plus) into out/
#   ./build.sh image --board qemu-arm64 --out DIR [--kernel-deb PATH] [--fresh]
#   ./build.sh boot [IMAGE] [--check]
#   ./build.sh test [--fast]
#   ./build.sh dev
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV="$REPO/.venv"
export PYTHONPATH="$REPO/image${PYTHONPATH:+:$PYTHONPATH}"

IMAGE_TOOLS=(mmdebstrap qemu-user-static binfmt-support arch-test dosfstools mtools e2fsprogs
             fdisk zstd bmap-tools git ca-certificates)
BOOT_TOOLS=(qemu-system-arm qemu-efi-aarch64 zstd)
PY_TOOLS=(python3 python3-venv)

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

usage() {
  cat <<'EOF'
Usage: ./build.sh [COMMAND] [OPTIONS]

Commands:
  image [--board NAME] [--out DIR] [--kernel-deb PATH] [--fresh] [--keep-work]
        Build a flashable image (default command; default board orangepi-6-plus, out/).
        Outputs: sokoul-<board>-<version>.img.zst, .sha256, .bmap, .manifest.json
  boot [IMAGE] [--check] [--timeout S] [--disk-gib N] [--preseed F] [--bare]
       [--keep-running] [--ssh-key KEY.pub]
        Boot an image (default: newest qemu-arm64 image in out/) in qemu-system-aarch64
        with AAVMF UEFI, 2 virtio NICs, 2 NVMe drives. --check: headless, waits for
        /api/health with first boot done, prints seconds to healthy, powers off
        (--keep-running: leaves the VM up for ssh; --ssh-key: root login without a preseed).
  test [--fast]
        Lint, type-check and run the tests: unit, integration, then image (build + QEMU
        boot). --fast skips the image tier.
  dev   Run the supervisor on this host against the simulated board (state in ./var/),
        panel and API on http://127.0.0.1:8080. Changes nothing on this machine.
  help  This text. Every command also takes --help.

Boards: see hw/*/board.toml.
EOF
}

need_root() {
  [ "$(id -u)" = 0 ] || die "this needs root (apt, binfmt_misc, mmdebstrap, chroot)"
}

# Install Debian packages that are missing; does nothing when all are there (idempotent).
apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root
  say "installing host packages: ${missing[*]}"
  # test peers (minidlna, nginx) are packaged as services: never let their installation start a
  # daemon on this machine (minidlna would announce SSDP on the real interfaces). A policy-rc.d
  # that answers 101 ("action forbidden") is Debian's switch for that; ours is removed after.
  local policy=/usr/sbin/policy-rc.d ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && ours=1
  fi
  local try ok=0
  for try in 1 2 3; do
    if apt-get update -qq -o Acquire::Retries=5 &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Acquire::Retries=5 \
         --no-install-recommends "${missing[@]}"; then
      ok=1; break
    fi
    say "apt failed (try $try of 3), retrying in 10 s"; sleep 10
  done
  [ "$ours" = 1 ] && rm -f "$policy"
  [ "$ok" = 1 ] || die "could not install: ${missing[*]}"
}

# qemu-user for arm64 chroots: mount binfmt_misc when needed, enable the qemu-aarch64 handler.
ensure_binfmt() {
  need_root
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    say "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ "$(uname -m)" != aarch64 ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
      die "qemu-aarch64 is not registered in binfmt_misc (package qemu-user-static)"
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
      die "qemu-aarch64 binfmt handler lacks the F (fix-binary) flag needed for chroots"
  fi
}

# The build host's virtualenv, rebuilt when requirements/host.txt changes.
ensure_venv() {
  apt_ensure "${PY_TOOLS[@]}"
  local stamp="$VENV/.requirements.sha256" want
  want=$(sha256sum "$REPO/requirements/host.txt" | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  say "creating .venv (requirements/host.txt)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements/host.txt"
  echo "$want" > "$stamp"
}

cmd_image() {
  case " $* " in *" --help "*|*" -h "*) python3 -m sokoul_image image --help; return;; esac
  apt_ensure "${IMAGE_TOOLS[@]}" "${PY_TOOLS[@]}"
  ensure_binfmt
  python3 -m sokoul_image image "$@"
}

cmd_boot() {
  case " $* " in *" --help "*|*" -h "*) python3 -m sokoul_image boot --help; return;; esac
  apt_ensure "${BOOT_TOOLS[@]}"
  python3 -m sokoul_image boot "$@"
}

cmd_test() {
  local fast=0 a
  for a in "$@"; do
    case "$a" in
      --fast) fast=1 ;;
      -h|--help) echo "Usage: ./build.sh test [--fast]   (--fast: skip the image build + QEMU boot tier)"; return ;;
      *) die "test: unknown option $a" ;;
    esac
  done
  ensure_venv
  # tests also run first boot's tools on the host (growpart, ssh-keygen, systemd-machine-id-setup)
  # and drive Debian's chromium with Playwright; the systemd D-Bus double runs on a private
  # dbus-daemon; storage tests use loop devices, mkfs.ext4, mount; bench/storage.sh compares rsync;
  # network/VPN tests: nft, dnsmasq, udhcpc, wireguard-go; torrent tests seed from aria2c;
  # library/stream tests make and probe media with ffmpeg; DLNA tests compare with minidlna and
  # discover with gssdp-discover (gupnp-tools); bench/dlna.sh compares streaming with nginx
  # (fetched with curl); the Chromecast receiver double's TLS certificate comes from openssl
  apt_ensure "${IMAGE_TOOLS[@]}" "${BOOT_TOOLS[@]}" openssh-client cloud-guest-utils systemd chromium \
    dbus-daemon mount e2fsprogs util-linux rsync bc \
    nftables dnsmasq-base udhcpc ethtool iproute2 wireguard-go wireguard-tools tcpdump \
    aria2 ffmpeg minidlna gupnp-tools nginx-light openssl curl
  local py="$VENV/bin/python" t0=$SECONDS
  say "lint: ruff"
  "$VENV/bin/ruff" check "$REPO/sokoul_appliance" "$REPO/image" "$REPO/first_boot" "$REPO/tests"
  "$VENV/bin/ruff" format --check "$REPO/sokoul_appliance" "$REPO/image" "$REPO/first_boot" "$REPO/tests" "$REPO/bench"
  say "types: mypy"
  "$VENV/bin/mypy" --no-error-summary "$REPO/sokoul_appliance" "$REPO/image/sokoul_image" \
    "$REPO/first_boot/sokoul_first_boot.py"
  say "tests: unit ($((SECONDS - t0)) s so far)"
  "$py" -m pytest -q -m unit "$REPO/tests"
  say "tests: integration ($((SECONDS - t0)) s so far)"
  "$py" -m pytest -q -m integration "$REPO/tests"
  if [ "$fast" = 0 ]; then
    ensure_binfmt
    say "tests: image — mmdebstrap build of both boards + QEMU boot ($((SECONDS - t0)) s so far)"
    "$py" -m pytest -q -s -m image "$REPO/tests"
  fi
  say "all test tiers passed in $((SECONDS - t0)) s"
}

cmd_dev() {
  case " $* " in *" --help "*|*" -h "*)
    echo "Usage: ./build.sh dev   (supervisor + panel on 127.0.0.1:8080 against the simulated board hw/orangepi-6-plus/sim/acpi, read-only; state in ./var/)"; return;; esac
  ensure_venv
  mkdir -p "$REPO/var"
  say "panel: http://127.0.0.1:8080/ (simulated orangepi-6-plus, read-only: nothing on this machine is changed; Ctrl-C stops)"
  PYTHONPATH="$REPO" exec "$VENV/bin/python" -m sokoul_appliance \
    --root "$REPO/hw/orangepi-6-plus/sim/acpi" --board orangepi-6-plus --state "$REPO/var" \
    --listen 127.0.0.1:8080 "$@"
}

main() {
  local cmd=${1:-image}
  case "$cmd" in
    -h|--help|help) usage ;;
    image) shift || true; cmd_image "$@" ;;
    boot) shift; cmd_boot "$@" ;;
    test) shift; cmd_test "$@" ;;
    dev) shift; cmd_dev "$@" ;;
    --*) cmd_image "$@" ;;  # ./build.sh --board NAME ...
    *) echo "error: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
