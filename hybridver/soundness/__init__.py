"""Soundness cross-checking: benchmarks with hidden counterexamples (``plant*``) and the
harness that runs verifiers on them and reports every false claim.

Submodules are imported where they are used (they need torch and onnxruntime); this
package imports none of them.
"""
