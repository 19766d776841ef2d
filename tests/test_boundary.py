"""The worker side imports only the standard library, the libraries under test and xxhash.

Every worker-side module (audit.worker.*, audit.probes.*, audit.registry, audit.probe_api,
audit.user_probes, audit.errors) is imported in a fresh interpreter in which pandas, pyarrow and duckdb, and
the host-side packages of audit itself, cannot be imported: an import hook refuses them
and names the module that asked.  An audited environment holding numpy 1.21 and nothing
else must be able to run the worker.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from typing import List

import audit
from audit.runner.supervisor import SOURCE_ROOT

#: Host-only third-party packages, and audit's own host-side packages.
BLOCKED = ("pandas", "pyarrow", "duckdb", "audit.store", "audit.compare", "audit.report", "audit.runner",
           "audit.commands", "audit.cli")

HOOK = r'''
import importlib.abc, sys, traceback
BLOCKED = {blocked!r}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            importer = next((f.f_globals.get("__name__") for f, _ in traceback.walk_stack(None)
                             if str(f.f_globals.get("__name__", "")).startswith("audit")), "?")
            raise ImportError(f"worker-side module {{importer}} imports {{name}} (host side only)")
        return None

sys.meta_path.insert(0, Refuse())
import importlib
failed = []
for module in {modules!r}:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        failed.append(f"{{module}}: {{exc}}")
print("\n".join(failed))
sys.exit(1 if failed else 0)
'''


def worker_modules() -> List[str]:
    """Every worker-side module, found by walking the packages (a new module is covered)."""
    root = os.path.dirname(audit.__file__)
    out = ["audit.registry", "audit.probe_api", "audit.user_probes", "audit.errors", "audit.worker", "audit.probes"]
    for package in ("worker", "probes"):
        out += [f"audit.{package}.{m.name}" for m in pkgutil.iter_modules([os.path.join(root, package)])
                if m.name != "__main__"]  # a script: importing it would run the worker
    return out


def _check(modules: List[str], blocked: tuple = BLOCKED) -> subprocess.CompletedProcess:
    code = HOOK.format(blocked=blocked, modules=modules)
    return subprocess.run([sys.executable, "-c", code], cwd=SOURCE_ROOT, text=True, capture_output=True, timeout=60)


def test_the_worker_side_imports_no_host_package() -> None:
    modules = worker_modules()
    assert "audit.worker.main" in modules and "audit.probes.torch_ops" in modules
    done = _check(modules)
    assert done.returncode == 0, f"the worker side imports a host-side package:\n{done.stdout}{done.stderr}"


def test_the_hook_names_the_offending_import() -> None:
    """The check can fail: a host module imported as if it were worker-side is caught and named."""
    done = _check(["audit.store.runfile"], blocked=("pyarrow",))
    assert done.returncode == 1
    assert "worker-side module audit.store.runfile imports pyarrow" in done.stdout
