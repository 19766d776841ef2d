"""The committed history's own manifest: ``results/history/MANIFEST.json``.

It lists, per library, the releases the history holds and every run file with its release,
Python and sha256.  ``advise`` (and the generated document) check the library's files against
it before reading them, and refuse in one line when a file is missing, added or altered: a
history with a release missing would blame that release's changes on the next one, and a
tampered fingerprint would read as a stream change.  ``scripts/build_history.py`` writes it
after each run it adds; ``python scripts/build_history.py --manifest-only`` writes it for the
files there are.

    {"format": 1,
     "libraries": {"torch": {"releases": ["2.0.1", ...],
                             "files": {"torch/2026...parquet": {
                                 "release": "2.0.1", "python": "3.11", "sha256": "..."}}}}}
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Any, Dict, List, Optional

from audit.errors import UsageError
from audit.history import archive

NAME = "MANIFEST.json"
FORMAT = 1


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _relative(root: str, path: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def build(root: str, libraries: Optional[List[str]] = None) -> Dict[str, Any]:
    """The manifest of the run files under ``root`` (every library folder, or those named)."""
    if libraries is None:
        libraries = sorted(
            d for d in os.listdir(root) if glob.glob(os.path.join(root, d, "*.parquet"))
        )
    out: Dict[str, Any] = {}
    for library in libraries:
        history = archive.entries(library, root)
        out[library] = {
            "releases": archive.versions(history),
            "files": {
                _relative(root, e.path): {
                    "release": e.version,
                    "python": e.python,
                    "sha256": sha256(e.path),
                }
                for e in sorted(history, key=lambda e: e.path)
            },
        }
    return {"format": FORMAT, "libraries": out}


def write(root: str) -> str:
    """Write ``root/MANIFEST.json`` for the files there are now; its path."""
    path = os.path.join(root, NAME)
    text = json.dumps(build(root), indent=1, sort_keys=True) + "\n"
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path


def load(root: str) -> Dict[str, Any]:
    path = os.path.join(root, NAME)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise UsageError(
            f"{path} does not exist: the history at {root} carries no manifest, so it cannot be "
            "checked; write one with 'python scripts/build_history.py --manifest-only'"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable manifest: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(doc.get("libraries"), dict)
    ):
        raise UsageError(f"{path} is not a history manifest of format {FORMAT}")
    return doc


def check(root: str, library: str) -> None:
    """Refuse (UsageError, one line) unless the library's files are exactly those of the
    manifest."""
    doc = load(root)
    wanted = doc["libraries"].get(library)
    where = os.path.join(root, NAME)
    if not isinstance(wanted, dict) or not isinstance(wanted.get("files"), dict):
        raise UsageError(f"{where} lists no {library} history")
    files: Dict[str, Any] = wanted["files"]
    present = {_relative(root, p) for p in glob.glob(os.path.join(root, library, "*.parquet"))}
    for name in sorted(files):
        entry = files[name] if isinstance(files[name], dict) else {}
        shown = os.path.join(root, *name.split("/"))
        what = f"{library} {entry.get('release', '?')} on Python {entry.get('python', '?')}"
        if name not in present:
            raise UsageError(
                f"{shown} ({what}) is missing: it is in the manifest {where}; restore it "
                "(git checkout) or rebuild the history"
            )
        got = sha256(shown)
        if got != entry.get("sha256"):
            raise UsageError(
                f"{shown} ({what}) does not match the manifest {where}: "
                f"its sha256 is {got[:16]}..., "
                f"the manifest says {str(entry.get('sha256'))[:16]}...; "
                "restore it or rebuild the history"
            )
    extra = sorted(present - set(files))
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise UsageError(
            f"{os.path.join(root, *extra[0].split('/'))}{more} is not in the manifest {where}; "
            "remove it, or rebuild the history (scripts/build_history.py writes the manifest)"
        )
    releases = {str(e.get("release")) for e in files.values() if isinstance(e, dict)}
    listed = wanted.get("releases")
    if (
        not isinstance(listed, list)
        or set(map(str, listed)) != releases
        or len(listed) != len(releases)
    ):
        raise UsageError(
            f"{where}: the {library} release list does not match its files "
            f"({', '.join(sorted(releases))}); rebuild the manifest"
        )


def default_root() -> str:
    """The history that belongs to this installation: ``results/history`` beside the audit
    package."""
    import audit

    package = os.path.dirname(os.path.abspath(audit.__file__))
    return os.path.join(os.path.dirname(package), archive.HISTORY)


def locate(given: Optional[str]) -> str:
    """``--history DIR`` as given, else the project's own; a usage error when there is none."""
    if given:
        if not os.path.isdir(given):
            raise UsageError(f"--history {given!r} is not a directory")
        return given
    root = default_root()
    if not os.path.isdir(root):
        raise UsageError(
            f"no history beside this installation ({root} does not exist); "
            "name one with --history DIR"
        )
    return root
