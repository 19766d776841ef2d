"""The worker side: everything that runs inside the interpreter being audited.

``python -m audit.worker`` runs probe cases and speaks JSON lines to the host
(:mod:`audit.worker.main`); :mod:`~audit.worker.execute` runs one case,
:mod:`~audit.worker.fingerprint` digests its output, :mod:`~audit.worker.environment`
describes the machine, :mod:`~audit.worker.seeding` restores global generators, and
:mod:`~audit.worker.records` defines the record every case becomes.

These modules, the probe catalogue (:mod:`audit.probes`), :mod:`audit.registry`,
:mod:`audit.probe_api` and :mod:`audit.errors` import only the standard library, the
libraries under test and xxhash: an environment that audits numpy 1.21 holds nothing
else (tests/test_boundary.py enforces it).
"""
