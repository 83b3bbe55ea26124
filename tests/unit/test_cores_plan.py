"""Slice plans from clusters: roles given or inferred, boards without some roles, thermal avoid."""

from __future__ import annotations

from dataclasses import dataclass

from sokoul_appliance.cores import BACKGROUND, HEAVY, INTERACTIVE, cluster_roles, plan_slices


@dataclass(frozen=True)
class C:
    cpus: tuple[int, ...]
    core: str
    capacity: int | None
    max_khz: int | None


@dataclass(frozen=True)
class R(C):
    role: str = "big"


def plan(clusters: list[C], avoid: tuple[int, ...] = ()) -> dict[str, tuple[int, ...]]:
    return {p.unit: p.cpus for p in plan_slices(clusters, avoid)}


A520, A720 = "cortex-a520", "cortex-a720"
DT = [
    C((0, 1, 2, 3), A520, 403, 1800000),
    C((4, 5, 6, 7), A720, 945, 2500000),
    C((8, 9, 10, 11), A720, 1024, 2500000),
]


def test_roles_inferred_from_capacity_when_discovery_gives_none() -> None:
    assert cluster_roles(DT) == ["little", "mid", "big"]
    assert plan(DT) == {
        INTERACTIVE: (4, 5, 6, 7),
        HEAVY: (8, 9, 10, 11),
        BACKGROUND: (0, 1, 2, 3),
    }


def test_given_roles_win_over_ranks() -> None:
    # ACPI numbering: the roles discovery gives are taken as they are
    acpi = [
        R((0, 1, 6, 7), A720, 1024, 2600000, "big"),
        R((2, 3, 4, 5), A520, 403, 1800000, "little"),
        R((8, 9, 10, 11), A720, 984, 2500000, "mid"),
    ]
    assert plan(acpi) == {
        INTERACTIVE: (8, 9, 10, 11),
        HEAVY: (0, 1, 6, 7),
        BACKGROUND: (2, 3, 4, 5),
    }


def test_rank_falls_back_to_frequency_without_capacity() -> None:
    clusters = [C((0, 1), A520, None, 1800000), C((2, 3), A720, None, 2400000)]
    assert cluster_roles(clusters) == ["little", "big"]


def test_big_little_board_runs_interactive_on_the_big_cores() -> None:
    clusters = [
        C((0, 1, 2, 3), "cortex-a55", 530, 1800000),
        C((4, 5, 6, 7), "cortex-a76", 1024, 2400000),
    ]
    assert plan(clusters) == {
        INTERACTIVE: (4, 5, 6, 7),
        HEAVY: (4, 5, 6, 7),
        BACKGROUND: (0, 1, 2, 3),
    }


def test_one_kind_of_core_gives_every_slice_every_cpu() -> None:
    qemu = [C((0, 1), "cortex-a76", 1024, None)]
    assert plan(qemu) == {INTERACTIVE: (0, 1), HEAVY: (0, 1), BACKGROUND: (0, 1)}
    # two policies of equal cores are still one kind
    same = [C((0, 1), A720, 1024, 2600000), C((2, 3), A720, 1024, 2600000)]
    assert plan(same) == {INTERACTIVE: (0, 1, 2, 3), HEAVY: (0, 1, 2, 3), BACKGROUND: (0, 1, 2, 3)}


def test_avoid_moves_only_background_to_the_next_cooler_role() -> None:
    hot_little = plan(DT, avoid=(0, 1, 2, 3))
    assert hot_little[BACKGROUND] == (4, 5, 6, 7)
    assert hot_little[INTERACTIVE] == (4, 5, 6, 7) and hot_little[HEAVY] == (8, 9, 10, 11)
    # part of the little cluster hot: background keeps the rest of it
    assert plan(DT, avoid=(0, 1))[BACKGROUND] == (2, 3)
    # the big cluster hot: background is not there, nothing moves
    assert plan(DT, avoid=(8, 9, 10, 11)) == plan(DT)
    # little and mid avoided: background goes to big
    assert plan(DT, avoid=tuple(range(8)))[BACKGROUND] == (8, 9, 10, 11)
    # every CPU avoided: the plan stays (an empty AllowedCPUs would mean "all" to systemd)
    assert plan(DT, avoid=tuple(range(12))) == plan(DT)
    # one kind of core: background leaves the avoided CPU
    assert plan([C((0, 1), "cortex-a76", 1024, None)], avoid=(0,))[BACKGROUND] == (1,)


def test_plan_records_roles_per_slice() -> None:
    roles = {p.unit: p.roles for p in plan_slices(DT, avoid=(0, 1, 2, 3))}
    assert roles == {INTERACTIVE: ("mid",), HEAVY: ("big",), BACKGROUND: ("mid",)}
