"""``crosscheck --cluster``: the (instance, tool) pairs as Ray tasks on a real local
cluster give the rows and flags of the local run; a tool that overruns is killed."""

from __future__ import annotations

import pytest

from tests.soundness.crosscheck_fixtures import (fake_tool, write_benchmark,
                                                 write_witnesses)
from tests.soundness.test_crosscheck import crosscheck, row
from tests.cluster.cpus import free_cpu  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow


def test_the_cluster_gives_the_local_rows(free_cpu, ray_address, tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    witnesses = write_witnesses(tmp_path / "witnesses.json")
    tools = [fake_tool(tmp_path, name) for name in ("always_unsat", "wrong_cex", "correct")]
    found = {}
    for name, extra in (("local", []), ("cluster", ["--cluster", ray_address])):
        code, report = crosscheck(tmp_path, csv, tools, "--witnesses", str(witnesses),
                                  *extra, report=name)
        assert code == 3
        found[name] = sorted((r["tool"], r["vnnlib"], r["verdict"], tuple(r["flags"]),
                              (r["cex"] or {}).get("status")) for r in report["rows"])
    assert found["cluster"] == found["local"] and len(found["cluster"]) == 6
    assert row(report, "always_unsat", "sat")["flags"] == ["FALSE_UNSAT"]
    assert row(report, "wrong_cex", "sat")["flags"] == ["INVALID_SAT"]


def test_a_tool_past_its_limit_is_a_timeout(free_cpu, ray_address, tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    sleeper = fake_tool(tmp_path, "sleeper", "time.sleep(60)\nanswer = 'unsat'")
    code, report = crosscheck(tmp_path, csv, [sleeper], "--timeout-cap", "1", "--grace", "1",
                              "--cluster", ray_address)
    assert code == 0
    assert {r["verdict"] for r in report["rows"]} == {"timeout"}
    assert all(r["killed"] for r in report["rows"])
