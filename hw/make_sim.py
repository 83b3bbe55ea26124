#!/usr/bin/env python3
"""Write the simulated-board fixture trees that the supervisor's `board` room reads.

    python3 hw/make_sim.py            # rewrite every tree
    python3 hw/make_sim.py --check    # exit 1 when a committed tree differs from this script

Each tree is a fake host root (``sys/``, ``proc/``, ``etc/sokoul/board``) holding only the files
discovery reads, in the shapes real sysfs/procfs use: relative symlinks from ``/sys/class`` and
``/sys/block`` into ``/sys/devices``, space-padded NVMe model/serial strings, sizes in 512-byte
sectors. Figures come from the board facts (docs/hardware.md); where the facts are silent the
value is marked "illustrative" below. Trees:

- ``orangepi-6-plus/sim/acpi``: UEFI firmware in ACPI mode, Debian kernel (cppc_cpufreq, r8169,
  acpitz thermal zones, hwmon ``cix_fan`` with only ``pwm1_enable``).
- ``orangepi-6-plus/sim/dt``: Device Tree mode, vendor kernel (scmi cpufreq, r8126, DT thermal
  zones, the EC fan's ``/sys/cix_fan/mode``). NVMe enumeration order differs from ACPI mode.
- ``qemu-arm64/sim``: QEMU ``virt`` as ``./build.sh boot`` starts it (2x cortex-a76, no cpufreq,
  no thermal, 2 virtio-net NICs, 2 ``QEMU NVMe Ctrl`` drives with the serials qemu.py sets).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HW = Path(__file__).resolve().parent


# -- the tree writer --------------------------------------------------------------------------
class Tree:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, absolute: str, text: str) -> None:
        p = self.root / absolute.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def link(self, absolute: str, target: str) -> None:
        """A relative symlink at ``absolute`` pointing to appliance path ``target``."""
        p = self.root / absolute.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(target, os.path.dirname(absolute))
        p.symlink_to(rel)


# -- board descriptions -----------------------------------------------------------------------
MIDR = {"a520": 0x410FD801, "a720": 0x410FD811, "a76": 0x414FD0B1}
FEATURES = {
    "a520": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
    "jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm "
    "sb paca pacg dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm "
    "svebf16 i8mm bf16 dgh bti",
    "a76": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
    "lrcpc dcpop asimddp",
}
FEATURES["a720"] = FEATURES["a520"]


@dataclass
class Policy:
    cpus: list[int]
    core: str
    capacity: int
    max_khz: int
    cur_khz: int


@dataclass
class Nic:
    name: str
    pci_chain: list[str]  # root port .. device, e.g. ["0002:00:00.0", "0002:01:00.0"]
    host_bridge: str  # "/sys/devices/pci0002:00" or a DT platform path
    driver: str
    mac: str
    operstate: str
    speed: int
    virtio: str | None = None  # "virtio1": the NIC is a virtio device below the PCI function


@dataclass
class Drive:
    name: str  # nvme0n1
    ctrl: str  # nvme0
    pci_chain: list[str]
    host_bridge: str
    model: str
    serial: str
    firmware: str
    sectors: int
    link: tuple[str, int] | None  # ("16.0 GT/s PCIe", 4) or None when no link files
    partitions: list[int] = field(default_factory=list)


@dataclass
class Board:
    name: str
    policies: list[Policy]  # cpufreq policies; CPUs without one get only cpu_capacity
    cpus: dict[int, tuple[str, int]]  # cpu -> (core, capacity)
    has_cpufreq: bool
    zones: list[tuple[str, str | None, int]]  # (type, ACPI path or None, millidegrees)
    nics: list[Nic]
    drives: list[Drive]
    root_partition: str
    mem_kb: tuple[int, int, int]  # MemTotal, MemFree, MemAvailable
    fan: str  # "hwmon-cix" | "ec-kobject" | "none"
    nvme_hwmon: bool
    stat_seed: int


def _orangepi_drives(first: str, second: str, root_on: str) -> list[Drive]:
    """Both M.2 slots are PCIe x4 (SSD2's x8 root complex is limited to x4) - facts."""
    samsung = Drive(
        "",
        "",
        ["0000:00:00.0", "0000:01:00.0"],
        "/sys/devices/pci0000:00",
        "Samsung SSD 980 PRO 1TB",
        "S5GXNF0R123456",
        "5B2QGXA7",
        1953525168,
        ("16.0 GT/s PCIe", 4),
    )
    wd = Drive(
        "",
        "",
        ["0001:00:00.0", "0001:01:00.0"],
        "/sys/devices/pci0001:00",
        "WD_BLACK SN850X 2000GB",
        "23154M800123",
        "620331WD",
        3907029168,
        ("16.0 GT/s PCIe", 4),
    )
    by_key = {"samsung": samsung, "wd": wd}
    out = []
    for index, key in enumerate((first, second)):
        d = by_key[key]
        d.name, d.ctrl = f"nvme{index}n1", f"nvme{index}"
        d.partitions = [1, 2] if key == root_on else [1]
        out.append(d)
    return out


def orangepi_acpi() -> Board:
    # ACPI numbering on this board: cpu0-1 A720, cpu2-5 A520, cpu6-11 A720 (facts).
    # cppc_cpufreq: one policy per frequency domain (the SoC has 5 CPU PLLs: facts, issue #310).
    # The A720s come as 4 "big" (specced 2.6 GHz) and 4 "mid" (2.5 GHz) - the vendor's figures
    # quoted in geerlingguy/sbc-reviews#62. Which ACPI pairs are big (here cpu0-1 and 6-7) and
    # the capacities (CPPC highest_perf scaled: 1024 big, 984 mid, 403 A520) are illustrative.
    policies = [
        Policy([0, 1], "a720", 1024, 2600000, 2600000),
        Policy([2, 3, 4, 5], "a520", 403, 1800000, 800000),
        Policy([6, 7], "a720", 1024, 2600000, 1800000),
        Policy([8, 9], "a720", 984, 2500000, 800000),
        Policy([10, 11], "a720", 984, 2500000, 1200000),
    ]
    cpus = {c: (p.core, p.capacity) for p in policies for c in p.cpus}
    zones = [
        ("acpitz", "\\_TZ_.TZB0", 46500),
        ("acpitz", "\\_TZ_.TZB1", 45800),
        ("acpitz", "\\_TZ_.TZM0", 43000),
        ("acpitz", "\\_TZ_.TZM1", 42300),
        ("acpitz", "\\_TZ_.TZGT", 40100),
    ]
    drives = _orangepi_drives("samsung", "wd", root_on="samsung")
    return Board(
        "orangepi-6-plus",
        policies,
        cpus,
        True,
        zones,
        [
            Nic(
                "enP2p1s0",
                ["0002:00:00.0", "0002:01:00.0"],
                "/sys/devices/pci0002:00",
                "r8169",
                "00:e0:4c:68:00:a1",
                "up",
                5000,
            ),
            Nic(
                "enP4p1s0",
                ["0004:00:00.0", "0004:01:00.0"],
                "/sys/devices/pci0004:00",
                "r8169",
                "00:e0:4c:68:00:a2",
                "down",
                -1,
            ),
        ],
        drives,
        "nvme0n1p2",
        (15950372, 13010144, 14203312),
        "hwmon-cix",
        True,
        7,
    )


def orangepi_dt() -> Board:
    # DT numbering: cpu0-3 A520, cpu4-7 A720 mid, cpu8-11 A720 big (facts). DT mode "may report
    # bogus frequencies" (facts): the A720 pairs here report 2.5 GHz (illustrative), which the
    # discovery must take as read, never correct by CPU number.
    policies = [
        Policy([0, 1, 2, 3], "a520", 403, 1800000, 1200000),
        Policy([4, 5], "a720", 945, 2500000, 1500000),
        Policy([6, 7], "a720", 945, 2500000, 1500000),
        Policy([8, 9], "a720", 1024, 2500000, 2500000),
        Policy([10, 11], "a720", 1024, 2500000, 2500000),
    ]
    cpus = {c: (p.core, p.capacity) for p in policies for c in p.cpus}
    zone_types = [
        "vpu-thermal",
        "gpu0-thermal",
        "gpu1-thermal",
        "brc-thermal",
        "ddr0-thermal",
        "ddr1-thermal",
        "ci700-thermal",
        "npu-thermal",
        "trc-thermal",
        "gpu-avg-thermal",
    ]
    temps = [41000, 44000, 43500, 45000, 39000, 39500, 46000, 40000, 42000, 43750]
    zones: list[tuple[str, str | None, int]] = [
        (t, None, m) for t, m in zip(zone_types, temps, strict=True)
    ]
    # Vendor kernel: the NVMe behind the x8 root complex enumerates first (illustrative), so the
    # system drive (the Samsung) is nvme1n1 here: holds_system must come from /proc/mounts.
    drives = _orangepi_drives("wd", "samsung", root_on="samsung")
    soc = "/sys/devices/platform/soc@0"
    for d in drives:
        domain = d.pci_chain[0][:4]
        d.host_bridge = f"{soc}/a0{domain[-1]}0000.pcie/pci{domain}:00"
    return Board(
        "orangepi-6-plus",
        policies,
        cpus,
        True,
        zones,
        [
            Nic(
                "enP2p1s0",
                ["0002:00:00.0", "0002:01:00.0"],
                f"{soc}/a020000.pcie/pci0002:00",
                "r8126",
                "00:e0:4c:68:00:a1",
                "up",
                5000,
            ),
            Nic(
                "enP4p1s0",
                ["0004:00:00.0", "0004:01:00.0"],
                f"{soc}/a040000.pcie/pci0004:00",
                "r8126",
                "00:e0:4c:68:00:a2",
                "up",
                2500,
            ),
        ],
        drives,
        "nvme1n1p2",
        (15950372, 12100500, 13877004),
        "ec-kobject",
        False,
        11,
    )


def qemu_virt() -> Board:
    # hw/qemu-arm64/board.toml: cortex-a76 x2, 2048 MiB; image/sokoul_image/qemu.py: PCI slot
    # order virtio-rng (00:01.0), nvme0 (00:02.0), nvme1 (00:03.0), net0 (00:04.0), net1
    # (00:05.0); serials SOKOUL-NVME0/1; MACs 52:54:00:5a:00:01/02; system disk 6 GiB
    # (--disk-gib default), media 4 GiB. TCG has no cpufreq and no thermal zones.
    cpus = {0: ("a76", 1024), 1: ("a76", 1024)}
    bridge = "/sys/devices/pci0000:00"
    drives = [
        Drive(
            "nvme0n1",
            "nvme0",
            ["0000:00:02.0"],
            bridge,
            "QEMU NVMe Ctrl",
            "SOKOUL-NVME0",
            "7.2.22",
            6 << 21,
            None,
            [1, 2],
        ),
        Drive(
            "nvme1n1",
            "nvme1",
            ["0000:00:03.0"],
            bridge,
            "QEMU NVMe Ctrl",
            "SOKOUL-NVME1",
            "7.2.22",
            4 << 21,
            None,
            [],
        ),
    ]
    nics = [
        Nic(
            "enp0s4",
            ["0000:00:04.0"],
            bridge,
            "virtio_net",
            "52:54:00:5a:00:01",
            "up",
            -1,
            virtio="virtio1",
        ),
        Nic(
            "enp0s5",
            ["0000:00:05.0"],
            bridge,
            "virtio_net",
            "52:54:00:5a:00:02",
            "up",
            -1,
            virtio="virtio2",
        ),
    ]
    return Board(
        "qemu-arm64",
        [],
        cpus,
        False,
        [],
        nics,
        drives,
        "nvme0n1p2",
        (2002576, 1423100, 1650232),
        "none",
        False,
        3,
    )


# -- writers ----------------------------------------------------------------------------------
def write_cpus(t: Tree, b: Board) -> None:
    base = "/sys/devices/system/cpu"
    n = len(b.cpus)
    for name in ("possible", "present", "online"):
        t.write(f"{base}/{name}", f"0-{n - 1}\n")
    policy_of = {c: i for i, p in enumerate(b.policies) for c in p.cpus}
    cpuinfo = []
    for cpu, (core, capacity) in sorted(b.cpus.items()):
        midr = MIDR[core]
        t.write(f"{base}/cpu{cpu}/cpu_capacity", f"{capacity}\n")
        t.write(f"{base}/cpu{cpu}/regs/identification/midr_el1", f"0x{midr:016x}\n")
        if cpu in policy_of:
            first = b.policies[policy_of[cpu]].cpus[0]
            t.link(f"{base}/cpu{cpu}/cpufreq", f"{base}/cpufreq/policy{first}")
        cpuinfo.append(
            f"processor\t: {cpu}\nBogoMIPS\t: {'2000.00' if core != 'a76' else '125.00'}\n"
            f"Features\t: {FEATURES[core]}\nCPU implementer\t: 0x{midr >> 24:02x}\n"
            f"CPU architecture: 8\nCPU variant\t: 0x{(midr >> 20) & 0xF:x}\n"
            f"CPU part\t: 0x{(midr >> 4) & 0xFFF:03x}\nCPU revision\t: {midr & 0xF}\n"
        )
    t.write("/proc/cpuinfo", "\n".join(cpuinfo) + "\n")
    for p in b.policies:
        d = f"{base}/cpufreq/policy{p.cpus[0]}"
        cpus = " ".join(str(c) for c in p.cpus)
        t.write(f"{d}/related_cpus", cpus + "\n")
        t.write(f"{d}/affected_cpus", cpus + "\n")
        t.write(f"{d}/cpuinfo_max_freq", f"{p.max_khz}\n")
        t.write(f"{d}/cpuinfo_min_freq", "800000\n")
        t.write(f"{d}/scaling_cur_freq", f"{p.cur_khz}\n")


def write_proc(t: Tree, b: Board) -> None:
    lines = []
    totals = [0] * 10
    for cpu in sorted(b.cpus):
        seed = b.stat_seed * 1000 + cpu * 37
        fields = [4000 + seed, 12, 1500 + cpu * 11, 90000 + seed * 3, 210, 0, 35, 0, 0, 0]
        totals = [a + f for a, f in zip(totals, fields, strict=True)]
        lines.append(f"cpu{cpu} " + " ".join(map(str, fields)))
    stat = "cpu  " + " ".join(map(str, totals)) + "\n" + "\n".join(lines) + "\n"
    stat += "intr 0\nctxt 1234567\nbtime 1763800000\nprocesses 4242\nprocs_running 2\n"
    stat += "procs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
    t.write("/proc/stat", stat)
    t.write("/proc/loadavg", "0.42 0.35 0.30 2/312 4242\n")
    t.write("/proc/uptime", f"{3600 + b.stat_seed}.42 {40000 + b.stat_seed}.10\n")
    total, free, avail = b.mem_kb
    t.write(
        "/proc/meminfo",
        f"MemTotal:       {total:8d} kB\nMemFree:        {free:8d} kB\n"
        f"MemAvailable:   {avail:8d} kB\nBuffers:           52144 kB\nCached:          "
        "812300 kB\nSwapCached:            0 kB\nSwapTotal:             0 kB\n"
        "SwapFree:              0 kB\n",
    )
    disk = b.root_partition.rsplit("p", 1)[0]
    t.write(
        "/proc/mounts",
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
        "udev /dev devtmpfs rw,nosuid,relatime,size=8000000k,nr_inodes=2000000,mode=755 0 0\n"
        f"/dev/{b.root_partition} / ext4 rw,relatime 0 0\n"
        "tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=1600000k,mode=755 0 0\n"
        f"/dev/{disk}p1 /boot/efi vfat rw,relatime,fmask=0077,dmask=0077,codepage=437,"
        "iocharset=ascii,shortname=mixed,utf8,errors=remount-ro 0 0\n",
    )


def write_thermal(t: Tree, b: Board) -> None:
    for i, (ztype, acpi_path, millideg) in enumerate(b.zones):
        real = f"/sys/devices/virtual/thermal/thermal_zone{i}"
        t.link(f"/sys/class/thermal/thermal_zone{i}", real)
        t.write(f"{real}/type", ztype + "\n")
        t.write(f"{real}/temp", f"{millideg}\n")
        if acpi_path is not None:
            # acpitz zones link to their LNXTHERM device, whose `path` is the ACPI name
            dev = f"/sys/devices/LNXSYSTM:00/LNXSYBUS:01/LNXTHERM:{i:02d}"
            t.link(f"{real}/device", dev)
            t.write(f"{dev}/path", acpi_path + "\n")
            t.write(f"{real}/trip_point_0_type", "critical\n")
            t.write(f"{real}/trip_point_0_temp", "98000\n")
            t.write(f"{real}/trip_point_1_type", "passive\n")
            t.write(f"{real}/trip_point_1_temp", "85000\n")
    hw = 0
    if b.fan == "hwmon-cix":
        real = f"/sys/devices/platform/cix-fan/hwmon/hwmon{hw}"
        t.link(f"/sys/class/hwmon/hwmon{hw}", real)
        t.write(f"{real}/name", "cix_fan\n")
        t.write(f"{real}/pwm1_enable", "2\n")
        hw += 1
    elif b.fan == "ec-kobject":
        # vendor cix-ec-fan driver: kobject_create_and_add("cix_fan", NULL) -> /sys/cix_fan
        t.write("/sys/cix_fan/mode", "normal\n")
        t.write("/sys/cix_fan/available_mode", "mute normal performance\n")
    if b.nvme_hwmon:
        for d in b.drives:
            real = f"{_pci_dir(d.host_bridge, d.pci_chain)}/nvme/{d.ctrl}/hwmon{hw}"
            t.link(f"/sys/class/hwmon/hwmon{hw}", real)
            t.write(f"{real}/name", "nvme\n")
            t.write(f"{real}/temp1_input", "38850\n")
            hw += 1


def _pci_dir(bridge: str, chain: list[str]) -> str:
    return "/".join([bridge, *chain])


def write_nics(t: Tree, b: Board) -> None:
    real_lo = "/sys/devices/virtual/net/lo"
    t.link("/sys/class/net/lo", real_lo)
    t.write(f"{real_lo}/address", "00:00:00:00:00:00\n")
    t.write(f"{real_lo}/operstate", "unknown\n")
    t.write(f"{real_lo}/type", "772\n")
    for n in b.nics:
        pci = _pci_dir(n.host_bridge, n.pci_chain)
        parent = f"{pci}/{n.virtio}" if n.virtio else pci
        real = f"{parent}/net/{n.name}"
        t.link(f"/sys/class/net/{n.name}", real)
        t.link(f"{real}/device", parent)
        t.write(f"{real}/address", n.mac + "\n")
        t.write(f"{real}/operstate", n.operstate + "\n")
        t.write(f"{real}/speed", f"{n.speed}\n")
        t.write(f"{real}/type", "1\n")
        bus = "virtio" if n.virtio else "pci"
        t.link(f"{parent}/driver", f"/sys/bus/{bus}/drivers/{n.driver}")
        t.write(f"/sys/bus/{bus}/drivers/{n.driver}/uevent", "")
        if n.virtio:
            t.link(f"{pci}/driver", "/sys/bus/pci/drivers/virtio-pci")
            t.write("/sys/bus/pci/drivers/virtio-pci/uevent", "")
        else:
            t.write(f"{pci}/current_link_speed", "16.0 GT/s PCIe\n")
            t.write(f"{pci}/current_link_width", "1\n")


def write_drives(t: Tree, b: Board) -> None:
    for d in b.drives:
        pci = _pci_dir(d.host_bridge, d.pci_chain)
        ctrl = f"{pci}/nvme/{d.ctrl}"
        disk = f"{ctrl}/{d.name}"
        t.link(f"/sys/block/{d.name}", disk)
        t.link(f"/sys/class/block/{d.name}", disk)
        t.link(f"/sys/class/nvme/{d.ctrl}", ctrl)
        t.link(f"{disk}/device", ctrl)
        t.link(f"{ctrl}/device", pci)
        t.link(f"{pci}/driver", "/sys/bus/pci/drivers/nvme")
        t.write("/sys/bus/pci/drivers/nvme/uevent", "")
        t.write(f"{disk}/size", f"{d.sectors}\n")
        t.write(f"{disk}/removable", "0\n")
        t.write(f"{disk}/ro", "0\n")
        # the kernel pads NVMe identify strings with spaces (model 40, serial 20, fw 8)
        t.write(f"{ctrl}/model", f"{d.model:<40}\n")
        t.write(f"{ctrl}/serial", f"{d.serial:<20}\n")
        t.write(f"{ctrl}/firmware_rev", f"{d.firmware:<8}\n")
        if d.link is not None:
            t.write(f"{pci}/current_link_speed", d.link[0] + "\n")
            t.write(f"{pci}/current_link_width", f"{d.link[1]}\n")
        for number in d.partitions:
            part = f"{disk}/{d.name}p{number}"
            t.link(f"/sys/class/block/{d.name}p{number}", part)
            t.write(f"{part}/partition", f"{number}\n")
            t.write(f"{part}/size", f"{1048576 if number == 1 else d.sectors - 1050624}\n")


def build(board: Board, root: Path) -> None:
    t = Tree(root)
    t.write("/etc/sokoul/board", board.name + "\n")
    write_cpus(t, board)
    write_proc(t, board)
    write_thermal(t, board)
    write_nics(t, board)
    write_drives(t, board)


TREES = {
    Path("orangepi-6-plus/sim/acpi"): orangepi_acpi,
    Path("orangepi-6-plus/sim/dt"): orangepi_dt,
    Path("qemu-arm64/sim"): qemu_virt,
}


def _snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry below ``root``: relative path -> ("link", target) or ("file", text)."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = ("file", p.read_text())
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    args = p.parse_args(argv)
    status = 0
    for rel, make in TREES.items():
        target = HW / rel
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "root"
            build(make(), fresh)
            if args.check:
                if not target.is_dir() or _snapshot(fresh) != _snapshot(target):
                    print(f"{rel}: differs from hw/make_sim.py (run it)", file=sys.stderr)
                    status = 1
                continue
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(fresh, target, symlinks=True)
            print(f"wrote {rel}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
