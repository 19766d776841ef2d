"""What every benchmark prints: the machine it ran on, and its figures, also kept in results/bench/."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def machine() -> str:
    """CPU, cores, torch threads and library versions, from the audit's own environment capture."""
    from audit.worker.main import import_libraries

    import_libraries()
    from audit.worker.environment import capture

    env = capture()
    return (f"machine: {env.get('cpu_model')}, {env.get('cpu_count')} logical CPUs, torch threads "
            f"{env.get('num_threads')}, {env.get('os')} {env.get('arch')}\n"
            f"versions: python {env.get('python_version')}, numpy {env.get('numpy_version')}, "
            f"torch {env.get('torch_version')}, pandas {env.get('pandas_version')}, "
            f"xxhash {env.get('xxhash_version')}")


def publish(text: str, name: str) -> None:
    """Print the figures and keep them as results/bench/<name>.txt (the README quotes these)."""
    print(text)
    path = os.path.join(ROOT, "results", "bench", f"{name}.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
