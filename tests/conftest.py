"""Shared test fixtures: where the third-party benchmark data lives, skipping if absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = Path(os.environ.get("HYBRIDVER_SHARED_BENCHMARKS",
                                        REPO.parent / "shared" / "benchmarks"))
EXAMPLES = REPO / "examples"


def shared_files(*patterns: str) -> list[Path]:
    """Files under ../shared/benchmarks matching glob patterns ([] when the folder is absent)."""
    if not SHARED_BENCHMARKS.is_dir():
        return []
    found: set[Path] = set()
    for pattern in patterns:
        found.update(SHARED_BENCHMARKS.glob(pattern))
    return sorted(found)


@pytest.fixture
def shared_benchmarks() -> Path:
    """The shared benchmark folder; the test is skipped where it is absent."""
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(f"shared benchmarks not found at {SHARED_BENCHMARKS}")
    return SHARED_BENCHMARKS


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own cache folder: the scheduler's learned model
    (``$XDG_CACHE_HOME/hybridver/scheduler-model.json``) never touches the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


def pytest_sessionfinish(session, exitstatus) -> None:
    """Stop the session's shared Ray cluster (``tests/cluster/``), if it started one.
    Here, not in ``tests/cluster/conftest.py``: under xdist the controller collects no
    test, so it never loads that file."""
    from tests.cluster.ray_head import stop_session_cluster

    stop_session_cluster(session.config)
