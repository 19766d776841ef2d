"""The committed emulated aarch64 runs (results/reference-arm64/) against the x86-64 reference: the compare
path on real ARM data, with no emulator needed.  The arch must lead the 'why', not a field that merely differs."""

from __future__ import annotations

import glob
import os

import pytest

from audit.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARM = os.path.join(ROOT, "results", "reference-arm64")
X86 = os.path.join(ROOT, "results", "reference")


@pytest.mark.skipif(not glob.glob(os.path.join(ARM, "*.parquet")), reason="no committed aarch64 runs")
def test_x86_reference_against_the_emulated_arm_runs_names_the_architecture(capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "--baseline", X86, ARM]) == 1  # aarch64 does not reproduce x86-64
    out = capsys.readouterr().out.splitlines()
    assert "probes differ from the baseline" in out[0]
    assert "no-longer-runs" not in out[0]  # the root holds pandas: every probe the x86 reference ran runs here
    whys = [line.strip() for line in out if line.strip().startswith("why:")]
    assert whys and all(w.startswith("why: arch: aarch64 vs x86_64") for w in whys), \
        [w for w in whys if not w.startswith("why: arch:")][:3]


@pytest.mark.skipif(len(glob.glob(os.path.join(ARM, "*.parquet"))) < 3, reason="three CPU classes not committed")
def test_the_three_arm_classes_differ_by_cpu_class(capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", *sorted(glob.glob(os.path.join(ARM, "*.parquet")))]) == 1  # they differ
    out = capsys.readouterr().out
    assert "QEMU_CPU" in out or "cpu_capability" in out
