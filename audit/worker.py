"""The worker: runs probe cases inside the environment under test.

It imports only the standard library, the libraries under test and ``xxhash``, so it
can run in a virtualenv that holds an old numpy or torch and nothing else (the host puts
this source tree on ``PYTHONPATH``).  It speaks JSON lines on a private copy of stdout:

    {"type": "header", "schema": 2, "env": {...}}
    {"type": "start", "case_key": ..., "output_at": N}  # before each case: the host knows what
                                                 # ran, and where its output starts on stderr
    {"type": "record", ...}                      # the case's record (audit.records)
    {"type": "end", "cases": N}

Anything the probes print goes to stderr, so it cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import sys
import time
import traceback
from typing import Any, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple

from audit import registry
from audit.fingerprint import Fingerprint, fingerprint, state_fingerprint
from audit.probe_api import Output, Unsupported
from audit.records import HASH_ALGORITHM, SCHEMA_VERSION, Status
from audit.seeding import restored_global_state

#: Modules whose import registers the catalogue.
CATALOGUE = "audit.probes"

_LIBRARIES = ("numpy", "torch")


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


def _execute(case: registry.Case) -> Tuple[Fingerprint, Optional[str], float, float]:
    t0 = time.perf_counter()
    out = case.probe.func(**case.params)
    if case.probe.device == "cuda":
        sys.modules["torch"].cuda.synchronize()
    t1 = time.perf_counter()
    value, state = (out.value, out.state) if isinstance(out, Output) else (out, None)
    fp = fingerprint(value)
    state_fp = state_fingerprint(state)
    return fp, state_fp, t1 - t0, time.perf_counter() - t1


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


def run_case_checked(case: registry.Case, repeat: bool = True) -> Tuple[Dict[str, Any], bool]:
    """:func:`run_case`, and whether the process must stop (see :data:`POISONING`)."""
    try:
        return _run_case(case, repeat), False
    except POISONING as exc:
        message = f"{type(exc).__name__}: {_one_line(exc) or 'out of memory'}; the worker restarts"
        return {**base_record(case), "status": Status.ERROR.value, "message": message}, True


def _run_case(case: registry.Case, repeat: bool) -> Dict[str, Any]:
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
            fp, state_fp, elapsed, fp_time = _execute(case)
            identical = None
            if repeat:
                identical = True
                for _ in range(max(1, case.probe.repeats - 1)):
                    fp2, state_fp2, _, _ = _execute(case)
                    identical = identical and fp2.digest == fp.digest and state_fp2 == state_fp
    except (Unsupported, NotImplementedError) as exc:
        return {**record, "status": Status.UNSUPPORTED.value, "message": _one_line(exc)}
    except (AttributeError, ImportError) as exc:  # API missing in this version
        return {**record, "status": Status.UNSUPPORTED.value, "message": f"{type(exc).__name__}: {_one_line(exc)}"}
    except POISONING:
        raise
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
        return {**record, "status": Status.ERROR.value, "message": f"{type(exc).__name__}: {_one_line(exc)}{where}"}
    return {
        **record,
        "status": Status.OK.value,
        "message": None,
        "fingerprint": fp.digest,
        "dtype": fp.dtype,
        "shape": json.dumps(list(fp.shape)),
        "sample": fp.sample,
        "sample_index": json.dumps(list(fp.sample_index)),
        "state_fingerprint": state_fp,
        "repeat_identical": identical,
        "elapsed_s": elapsed,
        "fingerprint_s": fp_time,
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] + ("..." if len(text) > 500 else "")


def import_libraries() -> None:
    """Import the installed libraries under test before any case runs.

    Seeding restores only the generators of imported libraries, and the environment
    is captured from them, so they are loaded first.  pandas is imported by its probes.
    """
    for name in _LIBRARIES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def load_catalogue(extra_modules: Sequence[str] = ()) -> None:
    for name in (CATALOGUE, *extra_modules):
        importlib.import_module(name)


def apply_settings(threads: Optional[int], deterministic: Optional[bool]) -> None:
    """Settings made by library call rather than environment variable."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if threads:
        torch.set_num_threads(threads)
    if deterministic is not None:
        torch.use_deterministic_algorithms(deterministic)


class Channel:
    """The protocol stream: a private duplicate of fd 1; fd 1 itself now goes to stderr."""

    def __init__(self) -> None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        self._out: TextIO = os.fdopen(fd, "w", encoding="utf-8")

    def send(self, message: Dict[str, Any]) -> None:
        self._out.write(json.dumps(message, allow_nan=False) + "\n")
        self._out.flush()


def _skip_keys(path: Optional[str]) -> set:
    if not path:
        return set()
    with open(path, encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip()}


def cases_to_run(patterns: Sequence[str], seeds: Sequence[int], skip: Iterable[str] = ()) -> List[registry.Case]:
    skip = set(skip)
    chosen = registry.select(patterns)
    return [c for c in registry.iter_cases(chosen, seeds) if c.key not in skip]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m audit.worker", description=__doc__.split("\n")[0])
    p.add_argument("--probe", action="append", default=[], help="glob over probe keys/ids")
    p.add_argument("--seed", action="append", type=int, default=[], help="seed (repeatable)")
    p.add_argument("--skip-file", help="file of case keys not to run (already done)")
    p.add_argument("--no-repeat", action="store_true", help="run each case once")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--deterministic", choices=["on", "off"], help="torch.use_deterministic_algorithms")
    p.add_argument("--module", action="append", default=[], help="extra probe module to import")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    die_with_parent()
    channel = Channel()
    import_libraries()
    load_catalogue(args.module)
    apply_settings(args.threads, None if args.deterministic is None else args.deterministic == "on")
    from audit.environment import capture

    channel.send({"type": "header", "schema": SCHEMA_VERSION, "env": capture()})
    cases = cases_to_run(args.probe, args.seed or registry.DEFAULT_SEEDS, _skip_keys(args.skip_file))
    channel.send({"type": "plan", "cases": len(cases)})
    for case in cases:
        channel.send({"type": "start", "case_key": case.key, "output_at": _output_offset()})
        record, poisoned = run_case_checked(case, repeat=not args.no_repeat)
        channel.send({"type": "record", **record})
        if poisoned:  # no "end": the host starts a fresh worker for the cases left
            return EXIT_RESTART
    channel.send({"type": "end", "cases": len(cases)})
    return 0


def _output_offset() -> Optional[int]:
    """Where the next case's output will start in the stderr file, so the host can quote
    only that case's last words if it dies (None when stderr is a pipe or terminal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        return os.lseek(2, 0, os.SEEK_CUR)
    except OSError:
        return None


#: Exit status of a worker that stopped early so that the host restarts it.
EXIT_RESTART = 75


def die_with_parent() -> None:
    """Ask Linux to kill this worker when the host dies (even by SIGKILL).

    Without it a worker whose host was killed runs on, orphaned, until its next write
    fails, which for a hanging case is never.  Elsewhere it is a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:  # a host that died before this line is noticed at the first write (broken pipe)
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl (musl oddities)
        pass


if __name__ == "__main__":
    sys.exit(main())
