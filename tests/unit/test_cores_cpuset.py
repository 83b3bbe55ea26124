"""CPU list <-> systemd AllowedCPUs bitmask (D-Bus 'ay') and the 'systemctl show' list form."""

from __future__ import annotations

import pytest

from sokoul_appliance.systemd import cpus_to_mask, format_cpu_list, mask_to_cpus


@pytest.mark.parametrize(
    ("cpus", "mask"),
    [
        ((), b""),
        ((0,), b"\x01"),
        ((0, 1, 2, 3), b"\x0f"),
        ((4, 5, 6, 7), b"\xf0"),
        ((2, 3, 4, 5), b"\x3c"),
        ((0, 1, 6, 7), b"\xc3"),
        ((8, 9, 10, 11), b"\x00\x0f"),
        ((0, 11), b"\x01\x08"),
        ((63,), b"\x00" * 7 + b"\x80"),
        (tuple(range(12)), b"\xff\x0f"),
    ],
)
def test_mask_round_trip(cpus: tuple[int, ...], mask: bytes) -> None:
    assert cpus_to_mask(cpus) == mask
    assert mask_to_cpus(mask) == cpus


def test_mask_ignores_order_duplicates_and_padding() -> None:
    assert cpus_to_mask([11, 8, 9, 10, 8]) == b"\x00\x0f"
    assert mask_to_cpus(b"\x0f\x00\x00\x00") == (0, 1, 2, 3)  # kernel-padded mask
    assert mask_to_cpus([0x3C]) == (2, 3, 4, 5)  # a list of ints, as some bindings give 'ay'


def test_negative_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="never negative"):
        cpus_to_mask([-1, 2])


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        ((), ""),
        ((3,), "3"),
        ((0, 1, 2, 3), "0-3"),
        ((0, 1, 6, 7), "0-1 6-7"),
        ((0, 2, 3, 5), "0 2-3 5"),
    ],
)
def test_cpu_list_text(cpus: tuple[int, ...], text: str) -> None:
    assert format_cpu_list(cpus) == text
