"""A real local Ray cluster for the cluster tests (``ray start --head``).

One cluster per test session, shared by the xdist workers (it declares 6 CPUs on this
2-core machine, so that each xdist worker can hold its 2 shard actors and still run
tasks: a full cluster would make a second driver's shards wait): the first worker that
needs it starts it under a file lock and writes its address; the session's controller
stops it at the end, killing every process of the head's session (the hook is in
``tests/conftest.py``: the xdist controller never loads this file).  Tests that use it
skip cleanly where the ``[ray]`` extra is not installed.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.cluster.ray_head import STATE, shared_dir, start_head


@pytest.fixture(scope="session")
def ray_address(request) -> str:
    """The address of the session's local Ray cluster, with this process connected."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the [ray] extra is not installed")
    from filelock import FileLock

    from hybridver.cluster.connect import connect

    shared = shared_dir(request.config)
    with FileLock(str(shared / "ray-cluster.lock")):
        path = shared / STATE
        if path.exists():
            state = json.loads(path.read_text())
        else:
            state = start_head(cpus=6)
            path.write_text(json.dumps(state))
    connect(state["address"])
    return state["address"]
