"""Search domains (audit.domains) and the rule that declaring them leaves probe versions alone."""

from __future__ import annotations

import glob
import os

import pytest

from audit import domains, registry
from audit.errors import RegistryError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_domains_round_trip_through_json() -> None:
    made = [domains.integers(1, 10), domains.sampled_from(["float32", "float64"]),
            domains.tuples(domains.integers(1, 4), domains.integers(2, 8)),
            domains.compared_with(domains.integers(1, 50), same_as="n"),
            domains.compared_with(domains.integers(1, 8), reference=32)]
    for d in made:
        assert domains.from_json(domains.to_json(d)) == d


@pytest.mark.parametrize("bad", [{"integers": [5, 1]}, {"sampled_from": []}, {"what": 1}, {"integers": "x"}])
def test_malformed_domains_are_refused(bad: dict) -> None:
    with pytest.raises(RegistryError):
        domains.from_json(bad)


SOURCES = {
    "last": ('@op_probe("x", {"a": [1]}, sizes={"large": L},\n          search=S)\ndef f():\n    pass\n',
             '@op_probe("x", {"a": [1]}, sizes={"large": L})\ndef f():\n    pass\n'),
    "middle": ('@probe("x", search={"n": integers(1, 9)}, grid={"n": [1]})\ndef f():\n    pass\n',
               '@probe("x", grid={"n": [1]})\ndef f():\n    pass\n'),
    "first": ('@probe(search=S, grid={"n": [1]})\ndef f():\n    pass\n',
              '@probe(grid={"n": [1]})\ndef f():\n    pass\n'),
    "only": ('@probe(search=S)\ndef f():\n    pass\n', '@probe()\ndef f():\n    pass\n'),
    "indented": ('    @probe("x", grid=g, search=S)\n    def f():\n        pass\n',
                 '    @probe("x", grid=g)\n    def f():\n        pass\n'),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_without_search_cuts_exactly_the_keyword(name: str) -> None:
    with_search, without = SOURCES[name]
    assert registry.without_search(with_search) == without
    assert registry.without_search(without) == without


def test_a_search_keyword_in_the_body_is_kept() -> None:
    """Only the decorators' keyword goes: a call in the body still changes the version."""
    source = '@probe("x")\ndef f():\n    return g(search=1)\n'
    assert registry.without_search(source) == source


def test_declaring_domains_keeps_the_version_and_changing_the_grid_does_not() -> None:
    saved = registry.snapshot()
    try:
        registry.reset()

        def body(n: int) -> int:
            return n

        registry.probe("t.a", grid={"n": [1]}, name="a")(body)
        registry.probe("t.b", grid={"n": [1]}, name="b", search={"n": domains.integers(1, 9)})(body)
        registry.probe("t.c", grid={"n": [2]}, name="c", search={"n": domains.integers(1, 9)})(body)
        versions = {k: p.version for k, p in registry.all_probes().items()}
        assert versions["a"] == versions["b"] != versions["c"]
        assert registry.get("b").search == {"n": domains.integers(1, 9)}
        with pytest.raises(RegistryError, match="not in its grid"):
            registry.probe("t.d", grid={"n": [1]}, name="d", search={"m": domains.integers(1, 9)})(body)
        with pytest.raises(RegistryError, match="not a domain"):
            registry.probe("t.e", grid={"n": [1]}, name="e", search={"n": range(3)})(body)
        with pytest.raises(RegistryError, match="invariance parameter"):
            compared = domains.compared_with(domains.integers(1, 2))
            registry.probe("t.f", grid={"n": [1]}, name="f", search={"n": compared})(body)
    finally:
        registry.restore(saved)


def test_catalogue_versions_match_the_committed_reference() -> None:
    """The catalogue declares search domains; every probe's version is still the reference's."""
    pq = pytest.importorskip("pyarrow.parquet")
    import audit.probes  # noqa: F401  (registers the catalogue)

    stored = {}
    for path in glob.glob(os.path.join(ROOT, "results", "reference", "*.parquet")):
        table = pq.read_table(path, columns=["probe_key", "probe_version"])
        stored.update(zip(table.column("probe_key").to_pylist(), table.column("probe_version").to_pylist()))
    probes = registry.all_probes()
    searched = [k for k, p in probes.items() if p.search and k in stored]
    assert len(searched) > 40  # the size-dependent probes declare domains
    changed = [k for k in stored if k in probes and probes[k].version != stored[k]]
    assert changed == []
