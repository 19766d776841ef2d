"""Shared fixtures."""

from __future__ import annotations

from typing import Iterator

import pytest

import audit.probes  # noqa: F401  (the catalogue is registered before any test snapshots the registry)
from audit import registry


@pytest.fixture
def empty_registry() -> Iterator[None]:
    """An empty probe registry for the test, the real catalogue restored afterwards."""
    saved = registry.snapshot()
    registry.reset()
    try:
        yield
    finally:
        registry.restore(saved)
