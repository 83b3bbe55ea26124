"""The slice unit files the image ships match what the cores governor manages."""

from __future__ import annotations

import configparser
from pathlib import Path

from sokoul_appliance.cores import BACKGROUND, HEAVY, INTERACTIVE, SLICES


def unit(repo: Path, name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((repo / "systemd" / name).read_text())
    return parser


def test_three_slices_with_ordered_weights_and_no_fixed_cpus(repo: Path) -> None:
    weights = {}
    for name in SLICES:
        slice_unit = unit(repo, name)
        assert "AllowedCPUs" not in slice_unit["Slice"]  # set at runtime from discovery
        weights[name] = int(slice_unit["Slice"]["CPUWeight"])
    assert weights[INTERACTIVE] > weights[HEAVY] > weights[BACKGROUND]


def test_supervisor_runs_in_the_interactive_slice(repo: Path) -> None:
    assert unit(repo, "sokoul-supervisor.service")["Service"]["Slice"] == INTERACTIVE


def test_image_installs_slice_units(repo: Path) -> None:
    customize = (repo / "image/sokoul_image/customize.py").read_text()
    assert '(repo / "systemd").glob("*.slice")' in customize
