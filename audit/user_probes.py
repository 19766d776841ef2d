"""Your own probes: from a ``.py`` file, a dotted module, or an installed package.

A project keeps its probes in its own code and registers them with the catalogue's
decorator (``from audit.probe_api import probe``).  They reach a run three ways:

* ``python -m audit run --probes-from PATH_OR_MODULE`` (repeatable);
* ``AUDIT_PROBES`` (space-separated, the same spellings);
* the entry-point group ``determinism_audit.probes`` of packages installed in the audited
  interpreter (each entry point names a module: ``myproject = "myproject.audit_probes"``).

The *worker* imports them (it runs in the audited interpreter, which may be another
virtualenv than the host's); the host only resolves paths (against its working directory)
and learns the cases from the worker.  Every mistake is one :class:`UsageError` line: a
missing file, the module's own import error with its file and line, a probe id that
collides with the catalogue (or with another user probe), a module that registers nothing.
Worker side: standard library only.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import traceback
from typing import Any, Dict, List, Mapping, Optional, Sequence

from audit import registry
from audit.errors import DuplicateProbe, UsageError, one_line

#: The environment variable holding more sources, space-separated.
ENVIRONMENT = "AUDIT_PROBES"

#: The entry-point group installed packages register their probe modules under.
GROUP = "determinism_audit.probes"

#: Where the catalogue lives: a user probe may not take one of its keys.
CATALOGUE = "audit.probes"

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def is_path(source: str) -> bool:
    """A ``.py`` file (or anything with a path separator), as opposed to a dotted module."""
    return source.endswith(".py") or "/" in source or os.sep in source


def resolve(given: Sequence[str], environ: Mapping[str, str], cwd: str) -> List[str]:
    """The sources of a run, from ``--probes-from`` then ``AUDIT_PROBES``: files made
    absolute against ``cwd`` and checked to exist, modules checked to be dotted names,
    duplicates dropped.  (Host side: the worker runs elsewhere, in another directory.)"""
    out: List[str] = []
    for source in [*given, *environ.get(ENVIRONMENT, "").split()]:
        if is_path(source):
            path = os.path.abspath(os.path.join(cwd, os.path.expanduser(source)))
            if not os.path.isfile(path):
                what = "is a directory, not a .py file" if os.path.isdir(path) else "does not exist"
                raise UsageError(f"probe file {source!r} {what}")
            source = path
        elif not _DOTTED.match(source):
            raise UsageError(
                f"probe source {source!r} is neither a .py file nor a dotted module name"
            )
        if source not in out:
            out.append(source)
    return out


def load(sources: Sequence[str], entry_points: bool = True) -> Dict[str, List[str]]:
    """Import every source (then, if asked, the installed entry points): label -> probe keys.

    Call it after the catalogue is loaded, so a colliding id is caught and named.
    """
    loaded: Dict[str, List[str]] = {}
    for source in sources:
        loaded[source] = _load_one(source, source)
    if entry_points:
        for name, module in installed():
            if module not in sys.modules:  # already given with --probes-from
                loaded[module] = _load_one(module, f"entry point {name!r} ({GROUP})")
    return loaded


def load_within(sources: Sequence[str], timeout: float) -> Dict[str, List[str]]:
    """:func:`load`, given at most ``timeout`` seconds: a module whose import hangs is one line
    (the import is left in a daemon thread, which ends with the process)."""
    import threading

    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            box["loaded"] = load(sources)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="audit-load-probes", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise UsageError(
            f"the probe modules did not import within {timeout:g} s (--startup-timeout): "
            f"{', '.join(sources) or 'installed entry points'}"
        )
    if "error" in box:
        raise box["error"]
    return dict(box["loaded"])


def installed() -> List[Any]:
    """(name, module) of each entry point in :data:`GROUP` of this interpreter's packages."""
    from importlib import metadata

    try:
        found: Any = metadata.entry_points()
        group = found.select(group=GROUP) if hasattr(found, "select") else found.get(GROUP, [])
    except Exception:  # pragma: no cover - a broken distribution's metadata
        return []
    return sorted({(ep.name, ep.value.split(":")[0].strip()) for ep in group})


def _load_one(source: str, label: str) -> List[str]:
    before = set(registry.all_probes())
    try:
        if is_path(source):
            _exec_file(source)
        else:
            _import(source)
    except DuplicateProbe as exc:
        raise UsageError(_collision(label, exc)) from None
    except UsageError:
        raise
    except Exception as exc:  # the user's module failed: say so in its own words
        raise UsageError(f"cannot load probes from {label}: {describe(exc, source)}") from None
    added = sorted(set(registry.all_probes()) - before)
    if not added:
        raise UsageError(
            f"{label} registers no probe: decorate its functions with @probe from audit.probe_api"
        )
    return added


def _collision(label: str, exc: DuplicateProbe) -> str:
    owner = "a catalogue probe" if exc.owner.split(".")[:2] == CATALOGUE.split(".") else "a probe"
    return (
        f"{label}: probe {exc.key!r} collides with {owner} of the same key ({exc.owner}); "
        "give it another probe id, or name= to register it under another key"
    )


def module_name(path: str) -> str:
    """The name a probe file is imported under: private, and distinct per file."""
    import hashlib

    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    return f"audit_user_probes_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def _exec_file(path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"probe file {path!r} does not exist")
    name = module_name(path)
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"probe file {path!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(path)
    if folder not in sys.path:  # like a script: the file may import its neighbours
        sys.path.append(folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(
                f"probe module {name!r} is not importable by {sys.executable} "
                "(install it there, or give the path of its .py file)"
            ) from None
        raise


def describe(exc: BaseException, source: str) -> str:
    """``NameError: name 'x' is not defined (mymodule.py:3)``: the error and where, in the
    user's file if the traceback passes through it, else where it was raised."""
    where = _where(exc, source)
    text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else one_line(exc, 300)
    return f"{type(exc).__name__}: {text}" + (f" ({where})" if where else "")


def _where(exc: BaseException, source: str) -> Optional[str]:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{os.path.basename(exc.filename)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    own = source if is_path(source) else _module_file(source)
    mine = [f for f in frames if own and os.path.abspath(f.filename) == own]
    frame = (mine or frames)[-1]
    return f"{os.path.basename(frame.filename)}:{frame.lineno}"


def _module_file(name: str) -> Optional[str]:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        path = spec.origin if spec is not None else None
    return os.path.abspath(path) if path else None
