"""The worker's persistent mode (``--serve``): one case per request, for as long as the host asks.

``explore`` runs hundreds of small cases whose parameters the host draws one at a time;
starting a process per case would cost more than the cases.  In this mode the worker reads
JSON lines on stdin and answers each on the protocol stream (after the usual header):

    -> {"type": "describe", "probe": "torch.sum"}
    <- {"type": "probe", "key": ..., "id": ..., "version": ..., "kind": ..., "invariance": ...,
        "grid": {...}, "search": {param: domain JSON}}
    -> {"type": "case", "id": 7, "probe": "torch.sum", "params": {...}, "plain": true}
    <- {"type": "record", "id": 7, ...}     # the record run mode writes (audit.worker.records)
    -> {"type": "quit"}                      # or end of input

``plain`` runs an invariance probe at the one value its parameter holds (a scalar), as an
ordinary probe: the host compares the values itself.  A request the worker cannot serve is
answered ``{"type": "error", "id": ..., "message": ...}``; a case after which the process is
not trusted (out of memory) ends the worker with :data:`audit.worker.records.EXIT_RESTART`.

Worker side: standard library only (no hypothesis: the host draws the parameters).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, Iterable, Mapping

from audit import domains, registry
from audit.errors import AuditError
from audit.worker.execute import run_case_checked
from audit.worker.records import EXIT_RESTART

Send = Callable[[Dict[str, Any]], None]


def resolve(name: str) -> registry.Probe:
    """A probe by registration key, or by probe id when exactly one probe has that id."""
    probes = registry.all_probes()
    if name in probes:
        return probes[name]
    by_id = [p for p in probes.values() if p.id == name]
    if len(by_id) == 1:
        return by_id[0]
    if by_id:
        keys = ", ".join(sorted(p.key for p in by_id))
        raise AuditError(f"{name!r} names {len(by_id)} probes; give one key: {keys}")
    raise AuditError(f"no probe named {name!r}; see 'python -m audit list'")


def describe(probe: registry.Probe) -> Dict[str, Any]:
    grid = {k: (v if v == registry.SEEDS else list(v)) for k, v in probe.grid.items()}
    return {
        "type": "probe",
        "key": probe.key,
        "id": probe.id,
        "version": probe.version,
        "kind": probe.kind,
        "device": probe.device,
        "invariance": probe.invariance,
        "grid": grid,
        "search": {k: domains.to_json(d) for k, d in probe.search.items()},
    }


def run_request(request: Mapping[str, Any]) -> Dict[str, Any]:
    """One case: the record, with ``poisoned`` set when the worker must stop after it."""
    probe = resolve(str(request["probe"]))
    if request.get("plain"):
        probe = dataclasses.replace(probe, invariance=None)
    case = registry.Case(probe, dict(request["params"]))
    record, poisoned = run_case_checked(case, repeat=bool(request.get("repeat", False)))
    return {"type": "record", "id": request.get("id"), **record, "poisoned": poisoned}


def serve(requests: Iterable[str], send: Send) -> int:
    """Answer requests until ``quit`` or the end of input; the exit status."""
    for line in requests:
        if not line.strip():
            continue
        request: Dict[str, Any] = {}
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                request = {}
                raise AuditError("a request is a JSON object")
            kind = request.get("type")
            if kind == "quit":
                break
            if kind == "describe":
                send({**describe(resolve(str(request["probe"]))), "id": request.get("id")})
            elif kind == "case":
                answer = run_request(request)
                send(answer)
                if answer["poisoned"]:
                    return EXIT_RESTART
            else:
                raise AuditError(f"unknown request type {kind!r}")
        except (AuditError, KeyError, TypeError, ValueError) as exc:
            send(
                {
                    "type": "error",
                    "id": request.get("id"),
                    "message": str(exc),
                }
            )
    return 0
