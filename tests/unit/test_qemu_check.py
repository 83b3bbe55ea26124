from __future__ import annotations

from pathlib import Path

from sokoul_image.profile import QemuSettings
from sokoul_image.qemu import Expectations, VmFiles, expected_hostname, judge_health, qemu_argv

GIB = 1 << 30


def files(tmp: Path) -> VmFiles:
    return VmFiles(tmp / "s.img", tmp / "m.img", tmp / "v.fd", tmp / "serial", tmp / "qmp")


def test_vm_is_isolated_and_has_two_nics_and_two_nvme(tmp_path: Path) -> None:
    argv = qemu_argv(files(tmp_path), QemuSettings(), 18080, 12222, interactive=False)
    joined = " ".join(argv)
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert len(netdevs) == 2 and all("restrict=on" in n for n in netdevs)
    assert "net=10.0.2.0/24" in netdevs[0] and "net=10.0.3.0/24" in netdevs[1]
    assert "hostfwd=tcp:127.0.0.1:18080-:80" in netdevs[0]
    assert "hostfwd" not in netdevs[1]
    assert joined.count("-device nvme,") == 2 and "bootindex=0" in joined
    assert "AAVMF_CODE.fd" in joined and "-nographic" not in argv


def healthy(hostname: str = expected_hostname(), mode: str = "wizard") -> dict[str, object]:
    return {
        "status": "ok",
        "first_boot": {
            "completed": True,
            "hostname": hostname,
            "preseed": "applied" if mode == "preseeded" else "absent",
            "root": {"partition_bytes_before": 1 * GIB, "partition_bytes_after": 5 * GIB},
        },
        "setup": {"mode": mode},
        "root_filesystem": {"size_bytes": int(5.3 * GIB)},
    }


def test_judge_health() -> None:
    plain = Expectations(hostname=expected_hostname(), preseeded=False)
    assert expected_hostname() == "sokoul-0001"
    assert judge_health(healthy(), 6 * GIB, plain) == []
    not_grown = healthy()
    not_grown["root_filesystem"] = {"size_bytes": 1 * GIB}
    assert any("root filesystem" in m for m in judge_health(not_grown, 6 * GIB, plain))
    assert any("hostname" in m for m in judge_health(healthy("other"), 6 * GIB, plain))
    pre = Expectations(hostname="den-tv", preseeded=True)
    assert judge_health(healthy("den-tv", "preseeded"), 6 * GIB, pre) == []
    assert any("preseed" in m for m in judge_health(healthy("den-tv"), 6 * GIB, pre))


def test_ssh_probe_tells_banner_closed_and_silent() -> None:
    """The three answers the boot check's SSH watch acts on, from a real local listener."""
    import socket
    import threading

    from sokoul_image.qemu import ssh_probe

    def serve(behaviour: str) -> tuple[int, threading.Thread]:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)

        def one() -> None:
            conn, _ = srv.accept()
            if behaviour == "banner":
                conn.sendall(b"SSH-2.0-OpenSSH_10.0p2 Debian-7\r\n")
            elif behaviour == "silent":
                conn.recv(1)  # holds the connection open until the client gives up
            conn.close()
            srv.close()

        t = threading.Thread(target=one, daemon=True)
        t.start()
        return srv.getsockname()[1], t

    for behaviour in ("banner", "closed", "silent"):
        port, t = serve(behaviour)
        assert ssh_probe(port, wait=0.5) == behaviour
        t.join(5)
