"""Subproblems cross process boundaries as plain data, unchanged."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from hybridver.ir.evaluate import evaluate
from hybridver.schedule.transport import (graph_key, pack_graph, pack_subproblem, unpack_graph,
                                          unpack_subproblem)


def test_round_trip_through_pickle(digits_sat):
    problem = digits_sat.problems[0]
    data = pickle.loads(pickle.dumps((pack_graph(problem.graph), pack_subproblem(problem))))
    graph = unpack_graph(data[0])
    back = unpack_subproblem(data[1], graph)
    assert back.form() == problem.form()
    assert back.label == problem.label and back.case == problem.case
    assert graph.topological_order == problem.graph.topological_order
    np.testing.assert_array_equal(back.box.lower, problem.box.lower)
    np.testing.assert_array_equal(back.constraints.C, problem.constraints.C)
    for name, (lo, hi) in problem.node_bounds.items():
        np.testing.assert_array_equal(back.node_bounds[name][0], lo)
        np.testing.assert_array_equal(back.node_bounds[name][1], hi)
    x = torch.as_tensor(problem.box.center[None].reshape(1, *graph.input_node.shape))
    assert torch.equal(evaluate(graph, x), evaluate(problem.graph, x))


def test_graph_key_is_stable_per_object(digits_sat, tiny):
    g = digits_sat.problems[0].graph
    assert graph_key(g) == graph_key(g)
    assert graph_key(g) != graph_key(tiny.problems[0].graph)
