"""End to end: two real runs that differ only in ATEN_CPU_CAPABILITY, compared and attributed.

On this machine torch.randn of 16 or more float32 elements takes a vectorised path under
AVX512 and a scalar one under ``default``; the comparison must find that split and blame
the dispatch level, not the run.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from audit.compare import Difference, Verdict, compare_paths  # noqa: E402
from audit.runner.spec import RunSpec  # noqa: E402
from audit.runner.supervisor import Runner  # noqa: E402


def test_cpu_capability_split_is_found_and_attributed(tmp_path):
    import torch

    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("needs a CPU where torch dispatches to AVX512")
    for level in ("default", "avx512"):
        spec = RunSpec(probes=["torch.randn"], seeds=[0], env={"ATEN_CPU_CAPABILITY": level}, repeat=False)
        Runner(spec, str(tmp_path)).execute()
    c = compare_paths([str(tmp_path)])
    divergent = [f for f in c.findings if f.verdict == Verdict.DIVERGENT]
    assert divergent, "expected torch.randn to split by CPU capability"
    big = [f for f in divergent if f.case.get("size", 0) >= 16]
    assert big and all(f.axes[0] in ("cpu_capability", "ATEN_CPU_CAPABILITY") for f in big)
    assert {"cpu_capability", "ATEN_CPU_CAPABILITY"} <= set(big[0].axes)
    floats = [f for f in big if f.case.get("dtype") == "float32"]
    # drift only where the differing sampled elements reach every differing block; 10^6 draws
    # differ in all 62 blocks and 16 sampled elements reach few of them: "within N ULP where sampled"
    assert all(f.measured.kind == Difference.NUMERICAL_DRIFT for f in floats if f.case["size"] < 10**5)
    assert all(f.measured.kind is None and f.measured.covered is False and f.measured.max_ulp
               for f in floats if f.case["size"] >= 10**5)
    assert c.exit_code() == 1
