"""How the host starts a worker: its command line, its environment and its directory.

Both the plan (``python -m audit.worker --plan``) and the supervisor start workers, and
they must start them alike: the same selection, the same settings, the same source tree on
the path.  Pure: builds the arguments, starts nothing.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from audit.runner.spec import RunSpec
from audit.user_probes import is_path

#: The directory holding this source tree: put on the worker's PYTHONPATH so a virtualenv
#: with only the libraries under test can run ``python -m audit.worker``.
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_command(spec: RunSpec, skip_file: Optional[str]) -> List[str]:
    cmd = [spec.python, "-m", "audit.worker"]
    for glob in spec.probes:
        cmd += ["--probe", glob]
    for seed in spec.seeds:
        cmd += ["--seed", str(seed)]
    cmd += ["--sizes", ",".join(spec.sizes)]
    for module in spec.modules:
        cmd += ["--module", module]
    for source in spec.probe_sources:
        cmd += ["--probes-from", source]
    if not spec.catalogue:
        cmd.append("--no-catalogue")
    for name, value in spec.calls.items():  # made by the worker: audit.worker.calls
        cmd += ["--set", f"{name}={value}"]
    if not spec.repeat:
        cmd.append("--no-repeat")
    if spec.executions:
        cmd += ["--executions", str(spec.executions)]
    if skip_file:
        cmd += ["--skip-file", skip_file]
    return cmd


def worker_environment(spec: RunSpec) -> Dict[str, str]:
    env = dict(os.environ)
    for name in spec.unset:
        env.pop(name, None)
    env.update(spec.env)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = SOURCE_ROOT + (os.pathsep + path if path else "")
    if any(not is_path(source) for source in spec.probe_sources):  # modules import as from here
        env["PYTHONPATH"] += os.pathsep + os.getcwd()
    env["PYTHONUNBUFFERED"] = "1"
    return env
