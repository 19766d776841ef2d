"""Running one case inside the audited interpreter: requirements, executions, the record.

:func:`run_case` never raises: a case the machine cannot run is ``unsupported`` (with the
reason), an exception is ``error``.  Worker side: standard library, the libraries under
test and xxhash only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional, Tuple

from audit import registry
from audit.errors import one_line
from audit.probe_api import Output, Unsupported
from audit.worker import distance
from audit.worker.fingerprint import Fingerprint, decode_sample, fingerprint, state_fingerprint
from audit.worker.records import HASH_ALGORITHM, Status
from audit.worker.seeding import restored_global_state


def parse_version(text: str) -> Tuple[int, ...]:
    """'2.4.1+cu121' -> (2, 4, 1); pre-release tags are ignored (good enough for minimums)."""
    parts = []
    for piece in text.split("+")[0].split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def _installed_version(library: str) -> Optional[str]:
    module = sys.modules.get(library)
    if module is not None:
        return str(getattr(module, "__version__", "0"))
    if importlib.util.find_spec(library) is None:
        return None
    from importlib import metadata

    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "0"


def unmet_requirement(probe: registry.Probe) -> Optional[str]:
    """Why this machine cannot run ``probe``, or None if it can."""
    req = probe.requirement
    if req.min_python and sys.version_info[:2] < req.min_python:
        return f"needs Python >= {'.'.join(map(str, req.min_python))}"
    if req.library:
        version = _installed_version(req.library)
        if version is None:
            return f"{req.library} is not installed"
        if req.min_version and parse_version(version) < parse_version(req.min_version):
            return f"needs {req.library} >= {req.min_version}, found {version}"
    if req.device == "cuda":
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available():
            return "no CUDA device"
    return None


@dataclass
class Execution:
    """One execution of a case: what it produced, what it cost, and further record fields.

    Plain probes fill only the first four fields; trace and invariance probes add their own
    columns in ``fields`` and what must repeat in ``repeat_key``.
    """

    fingerprint: Fingerprint
    state: Optional[str]  # digest of the generator state after the probe
    elapsed_s: float
    fingerprint_s: float
    fields: Dict[str, Any] = field(default_factory=dict)  # further record columns
    repeat_extra: str = ""  # what else a second execution must reproduce

    @property
    def repeat_key(self) -> Tuple[str, Optional[str], str]:
        return self.fingerprint.digest, self.state, self.repeat_extra

    def record_fields(self) -> Dict[str, Any]:
        fp = self.fingerprint
        return {
            "fingerprint": fp.digest,
            "dtype": fp.dtype,
            "shape": json.dumps(list(fp.shape)),
            "sample": fp.sample,
            "sample_index": json.dumps(list(fp.sample_index)),
            "blocks": None if fp.blocks is None else fp.blocks.hex(),
            "block_elements": fp.block_elements,
            "state_fingerprint": self.state,
            "elapsed_s": self.elapsed_s,
            "fingerprint_s": self.fingerprint_s,
            **self.fields,
        }


def call_probe(case: registry.Case, **override: Any) -> Tuple[Any, Any, float]:
    """Call the probe on the case's parameters (some replaced by ``override``): (value, state, seconds)."""
    t0 = time.perf_counter()
    out = case.probe.func(**{**case.params, **override})
    if case.probe.device == "cuda":
        sys.modules["torch"].cuda.synchronize()
    elapsed = time.perf_counter() - t0
    value, state = (out.value, out.state) if isinstance(out, Output) else (out, None)
    return value, state, elapsed


def execute_plain(case: registry.Case) -> Execution:
    value, state, elapsed = call_probe(case)
    t1 = time.perf_counter()
    fp = fingerprint(value)
    state_fp = state_fingerprint(state)
    return Execution(fp, state_fp, elapsed, time.perf_counter() - t1)


def execute(case: registry.Case) -> Execution:
    """One execution of ``case``, by the kind of probe it is."""
    if case.probe.invariance is not None:
        from audit.worker.invariance import execute_invariance

        return execute_invariance(case)
    if case.probe.kind == "trace":
        from audit.worker.trace import execute_trace  # imports torch: only when a trace runs

        return execute_trace(case)
    return execute_plain(case)


def base_record(case: registry.Case) -> Dict[str, Any]:
    seed = case.params.get("seed")
    return {
        "case_key": case.key,
        "probe": case.probe.id,
        "probe_key": case.probe.key,
        "probe_version": case.probe.version,
        "kind": case.probe.kind,
        "device": case.probe.device,
        "params": case.params_json,
        "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        "hash_algorithm": HASH_ALGORITHM,
    }


#: Exceptions after which this process is not trusted to run another case: an out-of-memory
#: condition (or the address-space cap that caused it) outlives the case that hit it.
POISONING = (MemoryError,)


def run_case(case: registry.Case, repeat: bool = True) -> Dict[str, Any]:
    """Run one case (``probe.repeats`` times when ``repeat``) and return its record.

    Never raises: a case the machine cannot run is ``unsupported``, an exception ``error``.
    """
    return run_case_checked(case, repeat)[0]


def run_case_checked(case: registry.Case, repeat: bool = True,
                     executions: Optional[int] = None) -> Tuple[Dict[str, Any], bool]:
    """:func:`run_case`, and whether the process must stop (see :data:`POISONING`).

    ``executions`` replaces the probe's ``repeats`` (``--executions``: a disagreement rate)."""
    try:
        return _run_case(case, repeat, executions), False
    except POISONING as exc:
        message = f"{type(exc).__name__}: {one_line(exc) or 'out of memory'}; the worker restarts"
        return {**base_record(case), "status": Status.ERROR.value, "message": message}, True


def _run_case(case: registry.Case, repeat: bool, executions: Optional[int] = None) -> Dict[str, Any]:
    record = base_record(case)
    reason = unmet_requirement(case.probe)
    if reason is not None:
        return {**record, "status": Status.UNSUPPORTED.value, "message": reason}
    try:
        # One save/restore around every execution of the case: the next case starts from the
        # global state this one found, and a probe that draws from a global generator it did
        # not seed sees that generator move between its executions and is caught as
        # non-repeatable instead of passing by luck.
        with restored_global_state():
            first = execute(case)
            identical, disagreement = None, None
            count = RepeatCount(1, 0)
            if repeat:
                identical, disagreement, count = _repeated(case, first, executions)
    except (Unsupported, NotImplementedError) as exc:
        return {**record, "status": Status.UNSUPPORTED.value, "message": one_line(exc)}
    except (AttributeError, ImportError) as exc:  # API missing in this version
        return {**record, "status": Status.UNSUPPORTED.value, "message": f"{type(exc).__name__}: {one_line(exc)}"}
    except POISONING:
        raise
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
        return {**record, "status": Status.ERROR.value, "message": f"{type(exc).__name__}: {one_line(exc)}{where}"}
    return {**record, "status": Status.OK.value, "message": disagreement, **first.record_fields(),
            "repeat_identical": identical, **count._asdict()}


class RepeatCount(NamedTuple):
    """Executions of a case in one process, and how many disagreed with the first (record
    fields the sweep reads for its rates; not run-file columns)."""

    executions: int
    disagreements: int


def _repeated(case: registry.Case, first: Execution,
              executions: Optional[int]) -> Tuple[bool, Optional[str], RepeatCount]:
    """Execute ``case`` again, ``executions`` times in all (default the probe's ``repeats``):
    (identical, how the first disagreement differed, the count).  With the default it stops
    at the first disagreement, as always; an explicit count runs every execution so that the
    rate is known."""
    disagreement: Optional[str] = None
    done, disagreed = 1, 0
    for _ in range(max(1, (executions or case.probe.repeats) - 1)):
        again = execute(case)
        done += 1
        if again.repeat_key != first.repeat_key:
            disagreed += 1
            disagreement = disagreement or describe_disagreement(first, again)
            if executions is None:
                break
    if disagreement is not None and done > 2:
        disagreement = f"{disagreed} of {done} executions disagreed with the first; {disagreement}"
    return disagreed == 0, disagreement, RepeatCount(done, disagreed)


def describe_disagreement(first: Execution, again: Execution) -> str:
    """How a second execution differed from the first, in the terms compare uses: the
    fingerprints, and for the same dtype and shape how many sampled elements and which
    64 KiB blocks differ (the row keeps only the first execution's fingerprint)."""
    a, b = first.fingerprint, again.fingerprint
    if a.digest == b.digest:
        what = "generator state" if first.state != again.state else "invariance result or op trace"
        return f"a second execution gave the same output but another {what}"
    words = f"a second execution gave fingerprint {b.digest[:12]} (the first {a.digest[:12]})"
    if (a.dtype, a.shape) != (b.dtype, b.shape):
        return f"{words}: {b.dtype} {list(b.shape)} instead of {a.dtype} {list(a.shape)}"
    parts = []
    xs, ys = decode_sample(a.sample, a.dtype), decode_sample(b.sample, b.dtype)
    if xs and len(xs) == len(ys):
        differ = sum(x != y for x, y in zip(xs, ys))
        measured = distance.compare_samples(a.sample, b.sample, a.dtype)  # floats only
        ulps = f" by up to {measured[0]:,.0f} ULP" if differ and measured and measured[0] else ""
        parts.append(f"{differ} of {len(xs)} sampled elements differ{ulps}")
    blocks = distance.differing_block_indices(a.blocks, b.blocks)
    if blocks:
        parts.append(f"{len(blocks)} of {len(a.blocks or b'') // distance.DIGEST} blocks differ, "
                     f"the first at element {blocks[0] * (a.block_elements or 0)}")
    return words + (": " + ", ".join(parts) if parts else "")

