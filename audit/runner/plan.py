"""Which cases a run executes, known on the host before the first worker starts.

The host needs the list to count progress, to name the case a dying worker was running,
and to tell which records of an interrupted run still count on ``--resume``.  For the
catalogue alone the host works it out itself (importing the catalogue imports no library
under test).  User probes are another matter: a ``--probes-from`` module may import its
libraries at the top, an entry point is installed only in the audited interpreter, and
``--python`` may be another virtualenv.  Then the audited interpreter is asked
(``python -m audit.worker --plan``): it loads everything exactly as the run's worker will,
and a mistake in the user's probes is one line and exit 2 before anything runs.

The listing process writes to temporary files, not pipes, and the host waits for that
process alone: a probe module that starts a helper process at import (which inherits the
output) must not hold the host until the helper ends.  The listing runs in a process group
of its own, killed once it has answered (or timed out), helpers included.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional

from audit import registry, user_probes
from audit.errors import AuditError, UsageError
from audit.runner import processes
from audit.runner.launch import SOURCE_ROOT, worker_command, worker_environment
from audit.runner.spec import RunSpec


def planned_cases(spec: RunSpec) -> Dict[str, Dict[str, Any]]:
    """Case key -> base record (see :func:`audit.worker.execute.base_record`), in run order."""
    cases = _from_worker(spec) if asks_worker(spec) else _from_host(spec)
    if not cases:  # the globs matched, but no probe has a case in these size panels
        raise UsageError(
            f"the selected probes have no case in size panel {','.join(spec.sizes)}; "
            "see 'python -m audit list --sizes ...'"
        )
    return cases


def _from_host(spec: RunSpec) -> Dict[str, Dict[str, Any]]:
    for module in spec.modules:
        try:
            importlib.import_module(module)
        except (ImportError, ValueError) as exc:  # ValueError: an empty or relative name
            raise UsageError(f"cannot import probe module {module!r}: {exc}") from None
    import audit.probes  # noqa: F401  (registers the catalogue; imports no library)
    from audit.worker.execute import base_record

    seeds = spec.seeds or list(registry.DEFAULT_SEEDS)
    sizes = registry.parse_sizes(",".join(spec.sizes))
    return {
        c.key: base_record(c)
        for c in registry.iter_cases(registry.select(spec.probes), seeds, sizes)
    }


def asks_worker(spec: RunSpec) -> bool:
    """Whether the audited interpreter may know probes this host process does not."""
    if spec.probe_sources:
        return True
    if os.path.realpath(spec.python) != os.path.realpath(sys.executable):
        return True
    return bool(user_probes.installed())


def _from_worker(spec: RunSpec) -> Dict[str, Dict[str, Any]]:
    cmd = [*worker_command(spec, None), "--plan"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=err,
                env=worker_environment(spec),
                cwd=SOURCE_ROOT,
                stdin=subprocess.DEVNULL,
                **processes.group_options(),
            )
        except OSError as exc:
            raise AuditError(f"{spec.python} could not list the probes: {exc}") from None
        try:
            returncode = proc.wait(timeout=spec.startup_timeout)
        except subprocess.TimeoutExpired:
            raise AuditError(
                f"{spec.python} did not list its probes within {spec.startup_timeout:g} s "
                "(--startup-timeout); nothing was run"
            ) from None
        finally:
            processes.kill_group(proc)  # what the probe modules started at import goes too
        stdout, stderr = (_read(f) for f in (out, err))
    reply = _reply(stdout)
    if reply is None:
        tail = " ".join(stderr.split())[-600:]
        raise AuditError(f"{spec.python} could not list the probes (exit {returncode}): {tail}")
    if reply.get("type") == "error":
        raise UsageError(str(reply.get("message")))
    cases: List[Dict[str, Any]] = reply.get("cases") or []
    return {c["case_key"]: c for c in cases}


def _read(f: Any) -> str:
    f.seek(0)
    return str(f.read().decode("utf-8", "replace"))


def _reply(stdout: str) -> Optional[Dict[str, Any]]:
    for line in stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") in ("cases", "error"):
            return message
    return None
