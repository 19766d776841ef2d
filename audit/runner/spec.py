"""What a run executes and under which settings: the one record the CLI, the sweep and the
noxfile build, and the runner executes.  Pure data (no process is started here)."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

DEFAULT_CASE_TIMEOUT = 300.0

#: Seconds a worker may take to start (import its libraries and the probes) before it is
#: killed: a ``--python`` that never speaks must not hang the run.
DEFAULT_STARTUP_TIMEOUT = 120.0

#: Limits, not settings of what runs: a resumed run may change them.
_NOT_IN_DIGEST = ("case_timeout", "startup_timeout")


@dataclass
class RunSpec:
    """Everything that decides what a run executes and under which settings."""

    probes: List[str] = field(default_factory=list)
    seeds: List[int] = field(default_factory=list)
    # size panels (audit.registry.Sizes)
    sizes: List[str] = field(default_factory=lambda: ["default"])
    env: Dict[str, str] = field(default_factory=dict)  # environment variables to set
    unset: List[str] = field(default_factory=list)  # environment variables to remove
    #: settings the worker makes by a library call, in axis order (``--set NAME=VALUE``;
    #: each name is an entry of audit.worker.calls): {"threads": "2", "deterministic": "on"}
    calls: Dict[str, str] = field(default_factory=dict)
    repeat: bool = True
    # executions per case in one process (None: the probe's repeats)
    executions: Optional[int] = None
    modules: List[str] = field(default_factory=list)  # extra probe modules (tests)
    # user probes: .py paths (absolute) and modules
    probe_sources: List[str] = field(default_factory=list)
    # False: only the probes of probe_sources run (the CLI's default when it names some)
    catalogue: bool = True
    python: str = sys.executable
    case_timeout: float = DEFAULT_CASE_TIMEOUT
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT

    def digest(self) -> str:
        """What identifies an interrupted run that a ``--resume`` may continue."""
        data = {k: v for k, v in asdict(self).items() if k not in _NOT_IN_DIGEST}
        if data["catalogue"]:  # a spec that runs the catalogue keeps the digest it always had
            del data["catalogue"]
        if data.get("executions") is None:  # added later: runs interrupted before it still resume
            data.pop("executions", None)
        data.update(_legacy_calls(data.pop("calls")))
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _legacy_calls(calls: Dict[str, str]) -> Dict[str, object]:
    """The digest's spelling of ``calls``: the two settings RunSpec once held as fields of
    their own keep their old keys, so runs interrupted before ``calls`` still resume."""
    threads = calls.get("threads")
    out: Dict[str, object] = {
        "threads": int(threads) if threads else None,
        "deterministic": calls.get("deterministic"),
    }
    others = {k: v for k, v in calls.items() if k not in out}
    if others:
        out["calls"] = others
    return out
