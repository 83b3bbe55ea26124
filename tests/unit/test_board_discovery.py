"""Board discovery against the simulated-board trees in hw/*/sim and broken tmp trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sokoul_appliance.board import Discovery, SystemSampler, discover
from sokoul_appliance.board.cli import main as cli_main
from sokoul_appliance.host import Host

REPO = Path(__file__).resolve().parents[2]
ACPI = REPO / "hw/orangepi-6-plus/sim/acpi"
DT = REPO / "hw/orangepi-6-plus/sim/dt"
QEMU = REPO / "hw/qemu-arm64/sim"

SAMSUNG = ("Samsung SSD 980 PRO 1TB", "S5GXNF0R123456", 1953525168 * 512)
WD = ("WD_BLACK SN850X 2000GB", "23154M800123", 3907029168 * 512)


def clusters(d: Discovery) -> list[tuple[set[int], str, str, int | None, int | None]]:
    return [(set(c.cpus), c.core, c.role, c.max_khz, c.capacity) for c in d.clusters]


def drives(d: Discovery) -> list[tuple[str, str | None, str | None, int | None, bool]]:
    return [(x.name, x.model, x.serial, x.size_bytes, x.holds_system) for x in d.drives]


# -- Orange Pi 6 Plus, ACPI mode ---------------------------------------------------------------
async def test_acpi_three_clusters_merge_policies_not_cpu_numbers() -> None:
    # five cppc policies (one per CPU PLL), three performance levels: 4 A520, 4 mid, 4 big
    d = await discover(Host(ACPI))
    assert clusters(d) == [
        ({0, 1, 6, 7}, "cortex-a720", "big", 2600000, 1024),
        ({2, 3, 4, 5}, "cortex-a520", "little", 1800000, 403),
        ({8, 9, 10, 11}, "cortex-a720", "mid", 2500000, 984),
    ]
    policy = "/sys/devices/system/cpu/cpufreq/policy"
    assert [c.policies for c in d.clusters] == [
        (f"{policy}0", f"{policy}6"),
        (f"{policy}2",),
        (f"{policy}8", f"{policy}10"),
    ]
    assert d.board == "orangepi-6-plus"
    assert d.problems == ()


async def test_acpi_thermal_zones_are_named_by_their_acpi_objects() -> None:
    d = await discover(Host(ACPI))
    assert [(z.name, z.type, z.temp_c) for z in d.thermal_zones] == [
        ("TZB0", "acpitz", 46.5),
        ("TZB1", "acpitz", 45.8),
        ("TZM0", "acpitz", 43.0),
        ("TZM1", "acpitz", 42.3),
        ("TZGT", "acpitz", 40.1),
    ]
    # the nvme hwmon sensors have no pwm/fan channel: only the EC fan is a fan
    assert [f.to_json() for f in d.fans] == [
        {"name": "cix_fan", "mode": "auto", "rpm": None, "profile": None}
    ]


async def test_acpi_nics_and_drives() -> None:
    d = await discover(Host(ACPI))
    assert [n.to_json() for n in d.nics] == [
        {
            "name": "enP2p1s0",
            "mac": "00:e0:4c:68:00:a1",
            "pci_path": "0002:01:00.0",
            "driver": "r8169",
            "link": "up",
            "speed_mbps": 5000,
        },
        {
            "name": "enP4p1s0",
            "mac": "00:e0:4c:68:00:a2",
            "pci_path": "0004:01:00.0",
            "driver": "r8169",
            "link": "down",
            "speed_mbps": None,
        },
    ]
    assert drives(d) == [("nvme0n1", *SAMSUNG, True), ("nvme1n1", *WD, False)]
    system = d.system_drive()
    assert system is not None
    assert system.confirm_text == "Samsung SSD 980 PRO 1TB S5GXNF0R123456"
    assert system.to_json()["pcie_link"] == {"speed": "16.0 GT/s PCIe", "width": 4}
    assert [x.pci_path for x in d.drives] == ["0000:01:00.0", "0001:01:00.0"]
    assert [x.firmware_rev for x in d.drives] == ["5B2QGXA7", "620331WD"]


# -- Orange Pi 6 Plus, Device Tree mode --------------------------------------------------------
async def test_dt_clusters_zones_fan() -> None:
    d = await discover(Host(DT))
    # the same three clusters as in ACPI mode under other CPU numbers; all A720 pairs report
    # 2.5 GHz here, so mid and big are told apart by cpu_capacity alone
    assert clusters(d) == [
        ({0, 1, 2, 3}, "cortex-a520", "little", 1800000, 403),
        ({4, 5, 6, 7}, "cortex-a720", "mid", 2500000, 945),
        ({8, 9, 10, 11}, "cortex-a720", "big", 2500000, 1024),
    ]
    assert [(z.name, z.temp_c) for z in d.thermal_zones] == [
        ("vpu-thermal", 41.0),
        ("gpu0-thermal", 44.0),
        ("gpu1-thermal", 43.5),
        ("brc-thermal", 45.0),
        ("ddr0-thermal", 39.0),
        ("ddr1-thermal", 39.5),
        ("ci700-thermal", 46.0),
        ("npu-thermal", 40.0),
        ("trc-thermal", 42.0),
        ("gpu-avg-thermal", 43.75),
    ]
    assert all(z.name == z.type for z in d.thermal_zones)
    assert [f.to_json() for f in d.fans] == [
        {"name": "cix_fan", "mode": "auto", "rpm": None, "profile": "normal"}
    ]
    assert d.problems == ()


async def test_dt_system_drive_found_from_mounts_not_from_its_name() -> None:
    d = await discover(Host(DT))
    assert drives(d) == [("nvme0n1", *WD, False), ("nvme1n1", *SAMSUNG, True)]
    assert [(n.name, n.driver, n.link, n.speed_mbps) for n in d.nics] == [
        ("enP2p1s0", "r8126", "up", 5000),
        ("enP4p1s0", "r8126", "up", 2500),
    ]


# -- QEMU virt ---------------------------------------------------------------------------------
async def test_qemu_without_cpufreq_groups_by_capacity_and_core() -> None:
    d = await discover(Host(QEMU))
    assert [(c.cpus, c.core, c.role, c.max_khz, c.capacity, c.policies) for c in d.clusters] == [
        ((0, 1), "cortex-a76", "big", None, 1024, ())
    ]
    assert d.thermal_zones == ()
    assert d.fans == ()
    assert [(n.name, n.mac, n.pci_path, n.driver, n.link, n.speed_mbps) for n in d.nics] == [
        ("enp0s4", "52:54:00:5a:00:01", "0000:00:04.0", "virtio_net", "up", None),
        ("enp0s5", "52:54:00:5a:00:02", "0000:00:05.0", "virtio_net", "up", None),
    ]
    assert drives(d) == [
        ("nvme0n1", "QEMU NVMe Ctrl", "SOKOUL-NVME0", 6 << 30, True),
        ("nvme1n1", "QEMU NVMe Ctrl", "SOKOUL-NVME1", 4 << 30, False),
    ]
    assert [x.pcie_link for x in d.drives] == [None, None]
    assert [x.confirm_text for x in d.drives] == [
        "QEMU NVMe Ctrl SOKOUL-NVME0",
        "QEMU NVMe Ctrl SOKOUL-NVME1",
    ]
    assert d.problems == ()


async def test_discover_json_has_the_documented_shape() -> None:
    data = (await discover(Host(QEMU))).to_json()
    assert set(data) >= {"clusters", "thermal_zones", "fans", "nics", "drives"}
    assert data["clusters"][0] == {
        "cpus": [0, 1],
        "core": "cortex-a76",
        "role": "big",
        "max_khz": None,
        "capacity": 1024,
    }
    assert set(data["drives"][0]) >= {
        "name",
        "model",
        "serial",
        "size_bytes",
        "confirm_text",
        "holds_system",
    }
    json.dumps(data)  # serialisable as is


def test_cli_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["discover", "--root", str(ACPI), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["name"] for n in data["nics"]] == ["enP2p1s0", "enP4p1s0"]
    assert cli_main(["--root", str(DT)]) == 0
    table = capsys.readouterr().out
    assert "Samsung SSD 980 PRO 1TB" in table and "[system]" in table
    assert cli_main(["--root", str(REPO / "no-such-root")]) == 2


# -- broken and synthetic trees ----------------------------------------------------------------
def put(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def link(root: Path, path: str, target: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to(os.path.relpath(root / target.lstrip("/"), p.parent))


async def test_broken_files_become_problems_not_exceptions(tmp_path: Path) -> None:
    cpu = "/sys/devices/system/cpu"
    put(tmp_path, f"{cpu}/cpu0/cpu_capacity", "1024\n")
    put(tmp_path, f"{cpu}/cpu1/cpu_capacity", "banana\n")
    put(tmp_path, "/proc/cpuinfo", "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: zz\n")
    zone = "/sys/devices/virtual/thermal/thermal_zone0"
    link(tmp_path, "/sys/class/thermal/thermal_zone0", zone)
    put(tmp_path, f"{zone}/type", "cpu-thermal\n")
    put(tmp_path, f"{zone}/temp", "hot\n")
    ctrl = "/sys/devices/pci0000:00/0000:00:00.0/0000:01:00.0/nvme/nvme0"
    link(tmp_path, "/sys/block/nvme0n1", f"{ctrl}/nvme0n1")
    link(tmp_path, f"{ctrl}/nvme0n1/device", ctrl)
    put(tmp_path, f"{ctrl}/nvme0n1/size", "2000\n")
    put(tmp_path, f"{ctrl}/serial", "SER123   \n")  # no model file
    hw = "/sys/devices/platform/cix-fan/hwmon/hwmon0"
    link(tmp_path, "/sys/class/hwmon/hwmon0", hw)
    put(tmp_path, f"{hw}/name", "cix_fan\n")
    put(tmp_path, f"{hw}/pwm1_enable", "7\n")

    d = await discover(Host(tmp_path))

    assert [(c.cpus, c.core, c.capacity) for c in d.clusters] == [
        ((0,), "unknown", 1024),
        ((1,), "unknown", None),
    ]
    assert [z.to_json() for z in d.thermal_zones] == [
        {"name": "cpu-thermal", "type": "cpu-thermal", "temp_c": None}
    ]
    assert [(x.name, x.model, x.serial, x.size_bytes) for x in d.drives] == [
        ("nvme0n1", None, "SER123", 1024000)
    ]
    assert d.drives[0].confirm_text == "SER123"
    assert [f.mode for f in d.fans] == [None]
    problems = "\n".join(d.problems)
    assert "/sys/devices/system/cpu/cpu1/cpu_capacity: not a whole number ('banana')" in problems
    assert "/proc/cpuinfo: processor '0' has no readable CPU implementer / CPU part" in problems
    assert "cpu0: core type unknown" in problems
    assert "/sys/class/thermal/thermal_zone0/temp: not a whole number ('hot')" in problems
    assert "/sys/block/nvme0n1/device/model: missing" in problems
    assert "/sys/class/hwmon/hwmon0/pwm1_enable: unknown value 7" in problems
    assert "/proc/mounts: missing" in problems
    assert json.dumps(d.to_json())


async def test_empty_root_gives_empty_discovery(tmp_path: Path) -> None:
    d = await discover(Host(tmp_path))
    assert (d.clusters, d.nics, d.drives, d.thermal_zones, d.fans) == ((), (), (), (), ())
    assert "/sys/devices/system/cpu: no cpuN directories" in d.problems


async def test_nics_ordered_by_pci_path_not_by_name(tmp_path: Path) -> None:
    # eth0 sits on PCI domain 10, eth1 on domain 2: eth1 comes first; lo and wg0 are skipped
    for name, domain, mac in (("eth0", "000a", "aa:00:00:00:00:0a"), ("eth1", "0002", "bb")):
        dev = f"/sys/devices/pci{domain}:00/{domain}:00:00.0/{domain}:01:00.0"
        link(tmp_path, f"/sys/class/net/{name}", f"{dev}/net/{name}")
        link(tmp_path, f"{dev}/net/{name}/device", dev)
        link(tmp_path, f"{dev}/driver", "/sys/bus/pci/drivers/r8169")
        put(tmp_path, f"{dev}/net/{name}/address", mac + "\n")
        put(tmp_path, f"{dev}/net/{name}/operstate", "lowerlayerdown\n")
    put(tmp_path, "/sys/bus/pci/drivers/r8169/uevent", "")
    for virtual in ("lo", "wg0"):
        link(tmp_path, f"/sys/class/net/{virtual}", f"/sys/devices/virtual/net/{virtual}")
        put(tmp_path, f"/sys/devices/virtual/net/{virtual}/address", "00:00:00:00:00:00\n")
    d = await discover(Host(tmp_path))
    assert [(n.name, n.pci_path, n.driver, n.link, n.speed_mbps) for n in d.nics] == [
        ("eth1", "0002:01:00.0", "r8169", "down", None),
        ("eth0", "000a:01:00.0", "r8169", "down", None),
    ]


async def test_loop_ram_and_partitions_are_not_drives(tmp_path: Path) -> None:
    for name in ("loop0", "ram0", "zram0", "dm-0", "nvme0c0n1"):
        put(tmp_path, f"/sys/devices/virtual/block/{name}/size", "100\n")
        link(tmp_path, f"/sys/block/{name}", f"/sys/devices/virtual/block/{name}")
    disk = "/sys/devices/platform/soc/usb/host0/target0:0:0/0:0:0:0/block/sda"
    link(tmp_path, "/sys/block/sda", disk)
    link(tmp_path, f"{disk}/device", "/sys/devices/platform/soc/usb/host0/target0:0:0/0:0:0:0")
    put(tmp_path, "/sys/devices/platform/soc/usb/host0/target0:0:0/0:0:0:0/model", "Cold HDD \n")
    put(tmp_path, f"{disk}/size", "8\n")
    put(tmp_path, f"{disk}/sda1/partition", "1\n")
    put(tmp_path, "/proc/mounts", "/dev/sda1 / ext4 rw 0 0\n")
    d = await discover(Host(tmp_path))
    assert [(x.name, x.model, x.serial, x.size_bytes, x.holds_system) for x in d.drives] == [
        ("sda", "Cold HDD", None, 4096, True)
    ]
    assert d.drives[0].confirm_text == "Cold HDD"


# -- SystemSampler -----------------------------------------------------------------------------
def stat(cpu0: tuple[int, int], cpu1: tuple[int, int]) -> str:
    """A /proc/stat with (busy user ticks, idle ticks) per CPU."""
    total = (cpu0[0] + cpu1[0], cpu0[1] + cpu1[1])
    lines = [f"cpu  {total[0]} 0 0 {total[1]} 0 0 0 0 0 0"]
    lines += [f"cpu{i} {b} 0 0 {idle} 0 0 0 0 0 0" for i, (b, idle) in enumerate((cpu0, cpu1))]
    return "\n".join(lines) + "\nintr 0\nctxt 0\n"


async def test_sampler_load_from_two_proc_stat_samples(tmp_path: Path) -> None:
    cpu = "/sys/devices/system/cpu"
    for n, (policy, khz) in enumerate((("policy0", 1800000), ("policy1", 2600000))):
        put(tmp_path, f"{cpu}/cpu{n}/cpu_capacity", "1024\n")
        put(tmp_path, f"{cpu}/cpu{n}/regs/identification/midr_el1", "0x00000000410fd811\n")
        put(tmp_path, f"{cpu}/cpufreq/{policy}/related_cpus", f"{n}\n")
        put(tmp_path, f"{cpu}/cpufreq/{policy}/cpuinfo_max_freq", f"{khz}\n")
        put(tmp_path, f"{cpu}/cpufreq/{policy}/scaling_cur_freq", f"{khz // 2}\n")
    put(tmp_path, "/proc/uptime", "123.45 200.00\n")
    put(tmp_path, "/proc/loadavg", "1.50 0.75 0.25 3/200 999\n")
    put(tmp_path, "/proc/meminfo", "MemTotal: 2000 kB\nMemFree: 500 kB\nMemAvailable: 1000 kB\n")
    put(tmp_path, "/proc/stat", stat((100, 900), (500, 500)))
    sampler = SystemSampler(Host(tmp_path))

    first = await sampler.sample()
    assert [c["load_percent"] for c in first["clusters"]] == [None, None]
    assert first["uptime_seconds"] == 123.45
    assert first["load_average"] == [1.5, 0.75, 0.25]
    assert first["memory"] == {"total_bytes": 2048000, "available_bytes": 1024000}
    assert [(c["cpus"], c["cur_khz"], c["max_khz"]) for c in first["clusters"]] == [
        ([0], 900000, 1800000),
        ([1], 1300000, 2600000),
    ]

    # cpu0: +30 busy of +40 ticks = 75 %; cpu1: +1 busy of +8 ticks = 12.5 %
    put(tmp_path, "/proc/stat", stat((130, 910), (501, 507)))
    second = await sampler.sample()
    assert [c["load_percent"] for c in second["clusters"]] == [75.0, 12.5]

    # no tick passed since the last sample: no figure rather than 0 %
    third = await sampler.sample()
    assert [c["load_percent"] for c in third["clusters"]] == [None, None]
    assert third["problems"] == []
    assert third["thermal_zones"] == [] and third["fans"] == []


async def test_sampler_on_the_acpi_tree() -> None:
    sampler = SystemSampler(Host(ACPI), (await discover(Host(ACPI))).clusters)
    data = await sampler.sample()
    # a merged cluster's frequency is the mean of its policies' (2.6 and 1.8 GHz; 0.8 and 1.2)
    assert [(c["cpus"], c["role"], c["cur_khz"]) for c in data["clusters"]] == [
        ([0, 1, 6, 7], "big", 2200000),
        ([2, 3, 4, 5], "little", 800000),
        ([8, 9, 10, 11], "mid", 1000000),
    ]
    assert data["memory"] == {"total_bytes": 15950372 * 1024, "available_bytes": 14203312 * 1024}
    assert [z["name"] for z in data["thermal_zones"]] == ["TZB0", "TZB1", "TZM0", "TZM1", "TZGT"]
    assert data["fans"][0]["mode"] == "auto"
    assert data["problems"] == []


async def test_sampler_with_broken_proc_files(tmp_path: Path) -> None:
    put(tmp_path, "/sys/devices/system/cpu/cpu0/cpu_capacity", "1024\n")
    put(tmp_path, "/proc/stat", "cpu0 1 2 x 4\n")
    put(tmp_path, "/proc/uptime", "soon\n")
    data = await SystemSampler(Host(tmp_path)).sample()
    assert data["uptime_seconds"] is None
    assert data["load_average"] is None
    assert data["memory"] == {"total_bytes": None, "available_bytes": None}
    assert data["clusters"][0]["cur_khz"] is None
    assert "/proc/stat: malformed line 'cpu0 1 2 x 4'" in data["problems"]
    assert "/proc/uptime: malformed ('soon')" in data["problems"]
    assert "/proc/loadavg: missing" in data["problems"]


def test_fixture_trees_match_their_generator() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(REPO / "hw/make_sim.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


async def test_policies_merge_by_core_capacity_and_frequency_whatever_the_numbering(
    tmp_path: Path,
) -> None:
    # an invented numbering: big, little, mid, big, mid, little interleaved one CPU per policy
    layout = [  # cpu: (midr, capacity, max_khz)
        ("0x410fd811", 1024, 2600000),
        ("0x410fd801", 403, 1800000),
        ("0x410fd811", 984, 2500000),
        ("0x410fd811", 1024, 2600000),
        ("0x410fd811", 984, 2500000),
        ("0x410fd801", 403, 1800000),
    ]
    cpu = "/sys/devices/system/cpu"
    for n, (midr, cap, khz) in enumerate(layout):
        put(tmp_path, f"{cpu}/cpu{n}/cpu_capacity", f"{cap}\n")
        put(tmp_path, f"{cpu}/cpu{n}/regs/identification/midr_el1", f"{midr}\n")
        put(tmp_path, f"{cpu}/cpufreq/policy{n}/related_cpus", f"{n}\n")
        put(tmp_path, f"{cpu}/cpufreq/policy{n}/cpuinfo_max_freq", f"{khz}\n")
    d = await discover(Host(tmp_path))
    assert clusters(d) == [
        ({0, 3}, "cortex-a720", "big", 2600000, 1024),
        ({1, 5}, "cortex-a520", "little", 1800000, 403),
        ({2, 4}, "cortex-a720", "mid", 2500000, 984),
    ]


def test_cluster_labels_are_roles_unless_two_clusters_share_one() -> None:
    from sokoul_appliance.board.cpus import Cluster, assign_roles, cluster_labels

    four = assign_roles(
        [
            Cluster((0, 1), "cortex-a520", 400, 1800000, ()),
            Cluster((2, 3), "cortex-a720", 900, 2300000, ()),
            Cluster((4, 5), "cortex-a720", 950, 2400000, ()),
            Cluster((6, 7), "cortex-a720", 1024, 2600000, ()),
        ]
    )
    assert [(c.cpus, c.role) for c in four] == [
        ((0, 1), "little"),
        ((2, 3), "mid"),
        ((4, 5), "mid"),
        ((6, 7), "big"),
    ]
    assert cluster_labels(four) == ["little", "mid-cpu2", "mid-cpu4", "big"]
