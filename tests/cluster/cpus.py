"""A guard for the tests that run Ray tasks on the session's shared cluster: they need a
free CPU, and fail at once with the reason when every CPU stays held (e.g. by idle shard
actors that some process keeps), instead of waiting for the tasks' answers."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def free_cpu(ray_address) -> None:
    import ray

    end = time.monotonic() + 120
    while ray.available_resources().get("CPU", 0) < 1:
        if time.monotonic() > end:
            pytest.fail(f"every CPU of the cluster at {ray_address} stayed held for 120 s "
                        f"(resources {ray.cluster_resources()}); idle actors of another "
                        "test process (hybridver.cluster.bab keeps its shard actors)?")
        time.sleep(0.5)
