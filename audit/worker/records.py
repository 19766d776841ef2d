"""The record: one row per probe case.  Shared by worker (which makes records) and host
(which stores them).  Standard library only.

:data:`RECORD_FIELDS` names every per-case column, in order; the environment fields of
:mod:`audit.worker.environment` follow them in a run file, plus ``run_id`` and ``run_started``.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

#: Version of the run file layout.  Bump it, and add an upgrade step in audit.store,
#: whenever a per-case column (:data:`RECORD_FIELDS`) is added, renamed or changes meaning.
#: A new environment field needs no bump: files that predate it read it as null ("unset").
#: 2: ``hash_algorithm`` names the digest behind ``fingerprint`` and ``state_fingerprint``.
#: 3: ``blocks``/``block_elements`` (where in a stream two runs differ), ``trace`` (per-op
#:    records of trace probes), ``invariance``/``invariant``/``variant_values`` (invariance
#:    cases), and ``seed`` holds every seed the CLI accepts (-2**63 .. 2**64-1).
#: 4: ``family``: the family the probe declares, so reports group a user's probe under it
#:    without importing its module.
SCHEMA_VERSION = 4

#: The digest behind every fingerprint this version writes.  Stored per row, so a future
#: change of algorithm can never make two equal outputs look divergent, or the reverse.
HASH_ALGORITHM = "xxh3_128"

#: How a null environment field is spelled wherever a person reads or writes one: in reports,
#: in expectations (``MKL_CBWR=unset``), in ``--resume``'s list of changed fields, and as the
#: sweep value that removes a variable (``--axis NPY_DISABLE_CPU_FEATURES=unset,X86_V4``).
UNSET = "unset"


def shown(value: Any) -> str:
    """A field's value as a person reads it: null is :data:`UNSET`."""
    return UNSET if value is None else str(value)


class Status(str, enum.Enum):
    """How a case ended, in the order a report lists them."""

    OK = "ok"
    UNSUPPORTED = "unsupported"  # the installed library (or machine) cannot run it
    ERROR = "error"  # the probe raised
    CRASH = "crash"  # the worker process died while running it
    TIMEOUT = "timeout"  # the case ran past its time limit and was killed


#: Per-case columns: name -> meaning.
RECORD_FIELDS: Dict[str, str] = {
    "case_key": "stable hash of probe key, device and parameters",
    "probe": "probe id: the dotted public API exercised (torch.randn)",
    "probe_key": "registration key (the id, with @cuda for CUDA probes, or a distinct name)",
    "probe_version": (
        "hash of the probe's source and grid; rows of different versions never compare"
    ),
    "kind": "generator, op or trace",
    "family": "the family the probe declares (family= or its module's FAMILY); null: none declared",
    "device": "cpu or cuda",
    "params": "case parameters as canonical JSON",
    "seed": "the case's seed, when it has one",
    "status": "ok, unsupported, error, crash or timeout",
    "message": "why a case is unsupported, or the error",
    "fingerprint": "xxh3-128 of dtype, shape and canonical little-endian bytes",
    "hash_algorithm": "the digest behind fingerprint and state_fingerprint (xxh3_128)",
    "dtype": "output dtype name (float32, bfloat16, int64, str, json ...)",
    "shape": "output shape as a JSON list",
    "sample": "hex of the canonical bytes of the sampled elements",
    "sample_index": "flat indices of the sampled elements, as a JSON list",
    "blocks": (
        "xxh3-64 digests (8 bytes each, little-endian) of the output's 64 KiB blocks, in order"
    ),
    "block_elements": "elements per block (null for variable-size outputs: str, json, big ints)",
    "state_fingerprint": "digest of the generator state after the probe",
    "repeat_identical": "whether a second execution in the same process gave the same result",
    "elapsed_s": "seconds the probe itself took (first execution)",
    "fingerprint_s": "seconds spent fingerprinting its output",
    "invariance": "the parameter whose values must not change the result (invariance cases only)",
    "invariant": (
        "whether every value of that parameter gave the same result (null: not an invariance case)"
    ),
    "variant_values": "the values whose result differed from the first value's, as a JSON list",
    "trace": "trace probes: one record per executed op (index, op, module, inputs, outputs)",
}


#: What a run file name may hold: the machine id comes from the audited environment and
#: the start time from a sidecar, and neither may put a separator or dot-dot in a path.
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]|\.\.")


@dataclass
class Run:
    """One run: its id, start time, environment and case records."""

    run_id: str
    started: str  # ISO 8601, UTC
    env: Dict[str, Optional[str]]
    records: List[Dict[str, Any]] = field(default_factory=list)

    @classmethod
    def new(cls, env: Mapping[str, Optional[str]]) -> Run:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return cls(uuid.uuid4().hex, now, dict(env))

    @property
    def file_name(self) -> str:
        stamp = self.started.replace("-", "").replace(":", "").split(".")[0] + "Z"
        machine = self.env.get("machine_id") or "unknown"
        name = _SAFE_NAME.sub("_", f"{stamp}_{machine}_{self.run_id[:12]}")
        return ("_" + name[1:] if name.startswith(".") else name) + ".parquet"  # never hidden


#: Exit status of a worker that stopped early so that the host restarts it.
EXIT_RESTART = 75
