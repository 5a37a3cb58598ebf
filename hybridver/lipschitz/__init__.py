"""Local Lipschitz constants of networks over an input box (issue 15, part 1).

``network``: the model as a chain of affine steps and activations; ``derivatives``:
activation derivative ranges; ``jacobian``: sound bounds of the gradient (interval and
linear propagation on the Jacobian's backward graph); ``search``: the forward intervals
and branch-and-bound on the input box; ``sampling``: the lower bound; ``exact``: the MILP
of ReLU networks; ``run``: one computation, :func:`local_lipschitz`.
docs/lipschitz.md says what is computed and why the upper bound is sound.
"""

from hybridver.lipschitz.network import LipschitzInputError
from hybridver.lipschitz.options import InputNorm, LipschitzConfig
from hybridver.lipschitz.run import LipschitzResult, local_lipschitz

__all__ = ["InputNorm", "LipschitzConfig", "LipschitzInputError", "LipschitzResult",
           "local_lipschitz"]
