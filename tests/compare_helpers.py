"""Synthetic runs for the compare tests: a few cases, chosen environments, written with the store."""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, List, Optional

from audit.store.runfile import Run, write_run
from audit.worker.environment import FIELDS

BASE_ENV: Dict[str, Optional[str]] = {name: None for name in FIELDS}
BASE_ENV.update(machine_id="linux-x86_64-0000aaaa", python_version="3.11.7", python_implementation="CPython",
                numpy_version="2.4.6", torch_version="2.13.0", os="Linux", arch="x86_64", cpu_model="Test CPU",
                cpu_count="2", cpu_capability="AVX512", num_threads="2", deterministic_algorithms="False")


def f32_sample(values: List[float]) -> str:
    return b"".join(struct.pack("<f", v) for v in values).hex()


def record(probe: str, params: Dict[str, Any], fingerprint: Optional[str], *, status: str = "ok",
           dtype: str = "float32", shape: str = "[4]", sample: str = "", repeat: Optional[bool] = True,
           version: str = "v1", device: str = "cpu", message: Optional[str] = None) -> Dict[str, Any]:
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    key = probe if device == "cpu" else f"{probe}@{device}"
    return {"case_key": f"{key}|{text}", "probe": probe, "probe_key": key, "probe_version": version,
            "kind": "generator", "device": device, "params": text, "seed": params.get("seed"),
            "status": status, "message": message, "fingerprint": fingerprint if status == "ok" else None,
            "dtype": dtype, "shape": shape, "sample": sample, "sample_index": "[0, 1, 2, 3]",
            "state_fingerprint": None, "repeat_identical": repeat if status == "ok" else None,
            "elapsed_s": 0.0, "fingerprint_s": 0.0}


def make_run(run_id: str, started: str, env: Dict[str, Optional[str]], records: List[Dict[str, Any]]) -> Run:
    return Run(run_id, started, {**BASE_ENV, **env}, list(records))


def dated_run(run_id: str, day: int, env: Dict[str, Optional[str]], *records: Dict[str, Any]) -> Run:
    """A run started at midnight of January ``day``, 2026 (runs are ordered by start)."""
    return make_run(run_id, f"2026-01-{day:02d}T00:00:00.000000Z", env, list(records))


def write(runs: List[Run], directory: str) -> List[str]:
    return [write_run(run, directory) for run in runs]
