"""Running one case inside the audited interpreter: requirements, executions, the record.

:func:`run_case` never raises: a case the machine cannot run is ``unsupported`` (with the
reason), an exception is ``error``.  Worker side: standard library, the libraries under
test and xxhash only.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import traceback
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from audit import registry
from audit.errors import one_line
from audit.probe_api import Unsupported
from audit.worker import distance, process_state
from audit.worker.execution import Execution, ReturnedNothing, call_and_fingerprint
from audit.worker.fingerprint import decode_sample
from audit.worker.invariance import execute_invariance
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


def execute(case: registry.Case) -> Execution:
    """One execution of ``case``, by the kind of probe it is."""
    if case.probe.invariance is not None:
        return execute_invariance(case)
    if case.probe.kind == "trace":
        from audit.worker.trace import execute_trace  # imports torch: only when a trace runs

        return execute_trace(case)
    return call_and_fingerprint(case)


def base_record(case: registry.Case) -> Dict[str, Any]:
    seed = case.params.get("seed")
    return {
        "case_key": case.key,
        "probe": case.probe.id,
        "probe_key": case.probe.key,
        "probe_version": case.probe.version,
        "kind": case.probe.kind,
        "family": case.probe.family,
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


def run_case_checked(
    case: registry.Case, repeat: bool = True, executions: Optional[int] = None
) -> Tuple[Dict[str, Any], bool]:
    """:func:`run_case`, and whether the process must stop (see :data:`POISONING`).

    ``executions`` replaces the probe's ``repeats`` (``--executions``: a disagreement rate)."""
    try:
        return _run_case(case, repeat, executions), False
    except POISONING as exc:
        message = f"{type(exc).__name__}: {one_line(exc) or 'out of memory'}; the worker restarts"
        return {**base_record(case), "status": Status.ERROR.value, "message": message}, True


def _run_case(
    case: registry.Case, repeat: bool, executions: Optional[int] = None
) -> Dict[str, Any]:
    record = base_record(case)
    reason = unmet_requirement(case.probe)
    if reason is not None:
        return {**record, "status": Status.UNSUPPORTED.value, "message": reason}
    leaks: List[str] = []
    try:
        # The global generators are saved and restored once around the case: the next case
        # starts from the state this one found, and a probe that draws from a global generator
        # it did not seed sees it move between its executions and is caught as non-repeatable.
        # The other process settings are restored after every execution (execute_restoring).
        with restored_global_state():
            first = execute_restoring(case, leaks)
            identical, disagreement = None, None
            count = RepeatCount(1, 0)
            if repeat:
                identical, disagreement, count = _repeated(case, first, executions, leaks)
    except Unsupported as exc:
        return {
            **record,
            "status": Status.UNSUPPORTED.value,
            "message": with_leaks(one_line(exc), leaks),
        }
    except POISONING:
        raise
    except Exception as exc:
        missing = missing_library(exc)
        if missing is not None:
            return {**record, "status": Status.UNSUPPORTED.value, "message": missing}
        return {
            **record,
            "status": Status.ERROR.value,
            "message": with_leaks(describe_error(exc, case.probe), leaks),
        }
    return {
        **record,
        "status": Status.OK.value,
        "message": with_leaks(disagreement, leaks),
        **first.record_fields(),
        "repeat_identical": identical,
        **count._asdict(),
    }


class RepeatCount(NamedTuple):
    """Executions of a case in one process, and how many disagreed with the first (record
    fields the sweep reads for its rates; not run-file columns)."""

    executions: int
    disagreements: int


def _repeated(
    case: registry.Case, first: Execution, executions: Optional[int], leaks: List[str]
) -> Tuple[bool, Optional[str], RepeatCount]:
    """Execute ``case`` again, ``executions`` times in all (default the probe's ``repeats``):
    (identical, how the first disagreement differed, the count).  With the default it stops
    at the first disagreement, as always; an explicit count runs every execution so that the
    rate is known."""
    disagreement: Optional[str] = None
    done, disagreed = 1, 0
    for _ in range(max(1, (executions or case.probe.repeats) - 1)):
        again = execute_restoring(case, leaks)
        done += 1
        if again.repeat_key != first.repeat_key:
            disagreed += 1
            disagreement = disagreement or describe_disagreement(first, again)
            if executions is None:
                break
    if disagreement is not None and done > 2:
        disagreement = f"{disagreed} of {done} executions disagreed with the first; {disagreement}"
    return disagreed == 0, disagreement, RepeatCount(done, disagreed)


def execute_restoring(case: registry.Case, leaks: List[str]) -> Execution:
    """:func:`execute`, then every process setting it changed put back, and named in ``leaks``."""
    changed: List[str] = []
    try:
        with process_state.checked() as changed:
            return execute(case)
    finally:
        leaks.extend(note for note in changed if note not in leaks)


def with_leaks(message: Optional[str], leaks: List[str]) -> Optional[str]:
    """The record's message, and a note naming the settings the probe left changed."""
    if not leaks:
        return message
    note = "the probe left process state changed (restored for the next case): " + "; ".join(leaks)
    return f"{message}; {note}" if message else note


#: The libraries under test: a probe that imports one of them where it is not installed
#: cannot run here, whether or not it declared ``library=`` (the requirement it implies).
LIBRARIES_UNDER_TEST = ("numpy", "torch", "pandas")


def missing_library(exc: BaseException) -> Optional[str]:
    """The unsupported reason when ``exc`` is the import of a library under test that is not
    installed at all; None for every other exception (``import trch`` is a mistake)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    if top not in LIBRARIES_UNDER_TEST or importlib.util.find_spec(top) is not None:
        return None
    return f"{top} is not installed"


def describe_error(exc: BaseException, probe: registry.Probe) -> str:
    """``AttributeError: module 'torch' has no attribute 'manul_seed' (at myprobes.py:12)``: the
    exception and the innermost line of the probe's own file it passed through (where the
    mistake usually is), else where it was raised."""
    code = getattr(probe.func, "__code__", None)
    if isinstance(exc, ReturnedNothing):
        where = f" (at {os.path.basename(code.co_filename)}:{code.co_firstlineno})" if code else ""
        return f"{one_line(exc)}{where}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = os.path.abspath(code.co_filename) if code else None
    mine = [f for f in frames if own and os.path.abspath(f.filename) == own]
    frame = (mine or frames)[-1] if frames else None
    where = f" (at {os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {one_line(exc)}{where}"


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
        parts.append(
            f"{len(blocks)} of {len(a.blocks or b'') // distance.DIGEST} blocks differ, "
            f"the first at element {blocks[0] * (a.block_elements or 0)}"
        )
    return words + (": " + ", ".join(parts) if parts else "")
