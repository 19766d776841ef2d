"""A real second environment: numpy 1.26.4 next to this interpreter's numpy 2.x.

Builds the environment the way a matrix cell is built (only numpy and xxhash; uv when it is
here, venv + pip otherwise), audits it from this host, and checks that the comparison
finds the change that is known to be there and nothing where nothing changed:

- ``Generator.zipf`` changed between numpy 1.26 and 2.x: with ``PCG64(0)`` and ``a=1.5``,
  87 of 100,000 draws differ, all in the heavy tail (893605 became 893604), so the integer
  stream itself changed, not its last bits;
- ``Generator.random`` (doubles from PCG64) is the same stream in both.

The probes live in a module this test writes, so they do not depend on the catalogue.
Run with ``nox -s slow`` (or ``pytest -m slow``); minutes on a cold uv cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Any, Dict

import pytest

from audit import registry
from audit.runner.spec import RunSpec
from audit.runner.supervisor import Runner

pytestmark = pytest.mark.slow

OLD_NUMPY = "1.26.4"

PROBES = textwrap.dedent(
    '''
    from audit.registry import probe

    @probe("numpy.random.Generator.zipf", name="slowmatrix.zipf", grid={"seed": [0], "a": [1.5]},
           library="numpy")
    def zipf(seed, a):
        import numpy as np
        return np.random.Generator(np.random.PCG64(seed)).zipf(a, 100000)

    @probe("numpy.random.Generator.random", name="slowmatrix.random", grid={"seed": [0]}, library="numpy")
    def random(seed):
        import numpy as np
        return np.random.Generator(np.random.PCG64(seed)).random(100000)
    '''
)


def _build(location: str) -> str:
    """numpy 1.26.4 + xxhash in a fresh environment; returns its interpreter."""
    python = os.path.join(location, "Scripts" if sys.platform == "win32" else "bin", "python")
    uv = shutil.which("uv") or os.path.join(os.path.dirname(sys.executable), "uv")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    if os.path.exists(uv):
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, location], check=True, env=env)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", python, f"numpy=={OLD_NUMPY}", "xxhash"],
                       check=True, env=env)
    else:
        subprocess.run([sys.executable, "-m", "venv", location], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", f"numpy=={OLD_NUMPY}", "xxhash"], check=True)
    return python


@pytest.fixture
def probe_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    folder = tmp_path / "probes"
    folder.mkdir()
    (folder / "slowmatrix_probes.py").write_text(PROBES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    saved = registry.snapshot()
    yield folder
    registry.restore(saved)
    sys.modules.pop("slowmatrix_probes", None)


def _fingerprints(python: str, folder: Any, results: str) -> Dict[str, Any]:
    spec = RunSpec(probes=["slowmatrix.*"], seeds=[0], modules=["slowmatrix_probes"], python=python,
                   env={"PYTHONPATH": str(folder)})
    outcome = Runner(spec, results).execute()
    assert all(r["status"] == "ok" for r in outcome.run.records), outcome.run.records
    return {"numpy": outcome.run.env["numpy_version"],
            **{r["probe_key"]: r["fingerprint"] for r in outcome.run.records}}


def test_numpy_1_26_and_2_x_differ_in_zipf_only(tmp_path: Any, probe_module: Any,
                                                capsys: pytest.CaptureFixture) -> None:
    np = pytest.importorskip("numpy")
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("the host's own numpy must be 2.x to compare with 1.26")
    if sys.version_info >= (3, 13):
        pytest.skip("numpy 1.26 has no wheels for Python 3.13+")
    old_python = _build(str(tmp_path / "numpy-old"))
    old = _fingerprints(old_python, probe_module, str(tmp_path / "runs"))
    new = _fingerprints(sys.executable, probe_module, str(tmp_path / "runs"))
    assert (old["numpy"], new["numpy"][0]) == (OLD_NUMPY, "2")
    assert old["slowmatrix.random"] == new["slowmatrix.random"]  # the PCG64 double stream is unchanged
    assert old["slowmatrix.zipf"] != new["slowmatrix.zipf"]  # the zipf sampler's tail changed

    from audit import cli

    capsys.readouterr()
    assert cli.main(["compare", str(tmp_path / "runs"), "--json"]) == 1
    findings = {f["probe"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    zipf = findings["numpy.random.Generator.zipf"]
    assert zipf["verdict"] == "divergent" and "numpy_version" in zipf["axes"]
    assert findings["numpy.random.Generator.random"]["verdict"] == "identical"
