"""Tests.  A package so that workers can import test-only probe modules (tests.crash_probes)."""
