"""One execution of a probe, as every kind of probe reports it.

:func:`call_and_fingerprint` calls a probe on its case's parameters, times it and fingerprints
what it returned (:func:`call_probe` is the call alone); :class:`Execution` is what one
execution produced.  Plain execution (:mod:`audit.worker.execute`), invariance
(:mod:`audit.worker.invariance`) and traces (:mod:`audit.worker.trace`) all build on these, so
they live apart from each of them.  An exception the probe raises passes through:
:func:`audit.worker.execute.run_case` makes it the record.  Worker side: standard library and
xxhash (through :mod:`audit.worker.fingerprint`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ContextManager, Dict, Mapping, Optional, Tuple

from audit import registry
from audit.probe_api import Output
from audit.worker.fingerprint import Fingerprint, fingerprint, state_fingerprint


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


class ReturnedNothing(Exception):
    """The probe returned None: there is no output to fingerprint (a forgotten ``return``)."""


def call_probe(case: registry.Case, **override: Any) -> Tuple[Any, Any, float]:
    """Call the probe on the case's parameters (some replaced by ``override``): (value, state,
    seconds)."""
    t0 = time.perf_counter()
    out = case.probe.func(**{**case.params, **override})
    if case.probe.device == "cuda":
        sys.modules["torch"].cuda.synchronize()
    elapsed = time.perf_counter() - t0
    value, state = (out.value, out.state) if isinstance(out, Output) else (out, None)
    if value is None:
        raise ReturnedNothing("returned nothing (None): a probe returns the output to fingerprint")
    return value, state, elapsed


def call_and_fingerprint(
    case: registry.Case,
    override: Optional[Mapping[str, Any]] = None,
    blocks: bool = True,
    around: Optional[ContextManager[Any]] = None,
) -> Execution:
    """One execution: :func:`call_probe` (inside ``around``, a trace's recorder, when given),
    then what the probe returned and the generator state it reported fingerprinted, outside
    ``around`` and timed apart (``blocks``: whether the output's block digests are kept)."""
    with around if around is not None else contextlib.nullcontext():
        value, state, elapsed = call_probe(case, **(override or {}))
    t0 = time.perf_counter()
    fp = fingerprint(value, blocks=blocks)
    state_fp = state_fingerprint(state)
    return Execution(fp, state_fp, elapsed, time.perf_counter() - t0)
