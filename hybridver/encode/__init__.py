"""Solver-neutral encodings of a subproblem (no solver imports here).

The network as affine expressions over solver variables (``affine_form``), the MILP model
(``milp``) with sound piecewise-linear envelopes of smooth nonlinearities (``envelopes``),
and the QF_LRA formula for SMT solvers (``smt``).  ``hybridver.backends`` solves them.
"""
