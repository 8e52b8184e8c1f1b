"""Kernels: the numerics the built-in samplers are composed of, for any sampler to compose.

A sampler is a short composition, "proposal = integrate(x, s, h, precondition); x = correct(proposal)":

- ``integrators``: ``euler_maruyama`` (optionally preconditioned: a diagonal or a metric),
  ``local_linearisation`` (Ozaki), ``euler_heun``; ``normal_like`` draws the noise (``box_muller``
  of ``uniform_pairs`` for float64 on the CPU), or ``normal_draws`` and ``normal_from`` in two parts.
- ``metropolis``: ``metropolis_hastings``, the exact correction of any Gaussian Langevin proposal;
  ``uniform_per_chain`` its uniforms.
- ``preconditioners``: metrics M (``EigenMetric``, ``DiagonalMetric``, ``CholeskyMetric``) and
  RMSprop's diagonal; ``ensemble``: M from the chains' covariance; ``jacobian_metrics``: M from JVPs
  (dense, Nyström) or a learned diagonal.
- ``curvature``: the diagonal of -J (Hutchinson, exact, learned) refreshed, smoothed, clipped and
  damped (``DiagonalCurvature``); the largest curvature by secant or power iterations.
- ``error_control``: a per-chain step from the Euler–Heun error, and ``BrownianMemory``.
- ``dual_averaging``: step-size adaptation towards a target acceptance, with its own state.

Every kernel is a function of tensors or a small record, with no state of its own: all scores come
through the oracle passed in (which charges for them), all random numbers from the generator passed
in, and nothing is read on the host.
"""

from ._batch import batch_shape, chain_norm
from .curvature import (
    CurvatureOptions,
    CurvatureState,
    DiagonalCurvature,
    clipped_fraction,
    inverse_curvature,
    power_curvature,
    power_start,
    score_and_curvature,
    secant_curvature,
    smooth,
)
from .dual_averaging import DualAveraging, DualAveragingState, dual_averaging_update
from .ensemble import ensemble_covariance, ensemble_mass_matrix, ensemble_metric
from .error_control import BrownianMemory, error_controlled_move, error_norm, next_step
from .integrators import (
    box_muller,
    euler_heun,
    euler_maruyama,
    local_linearisation,
    normal_draws,
    normal_from,
    normal_like,
    precondition,
    uniform_pairs,
)
from .jacobian_metrics import capped_fraction, dense_metric, learned_metric, nystrom_metric
from .metropolis import Corrected, MetropolisInfo, log_proposal, metropolis_hastings, uniform_per_chain
from .preconditioners import (
    CholeskyMetric,
    DiagonalMetric,
    EigenMetric,
    rmsprop_average,
    rmsprop_divergence,
    rmsprop_preconditioner,
)

__all__ = [
    "BrownianMemory",
    "CholeskyMetric",
    "Corrected",
    "CurvatureOptions",
    "CurvatureState",
    "DiagonalCurvature",
    "DiagonalMetric",
    "DualAveraging",
    "DualAveragingState",
    "EigenMetric",
    "MetropolisInfo",
    "batch_shape",
    "capped_fraction",
    "chain_norm",
    "clipped_fraction",
    "dense_metric",
    "dual_averaging_update",
    "ensemble_covariance",
    "ensemble_mass_matrix",
    "ensemble_metric",
    "error_controlled_move",
    "error_norm",
    "euler_heun",
    "euler_maruyama",
    "inverse_curvature",
    "learned_metric",
    "local_linearisation",
    "log_proposal",
    "metropolis_hastings",
    "uniform_per_chain",
    "next_step",
    "normal_like",
    "normal_draws",
    "normal_from",
    "box_muller",
    "uniform_pairs",
    "nystrom_metric",
    "power_curvature",
    "power_start",
    "precondition",
    "rmsprop_average",
    "rmsprop_divergence",
    "rmsprop_preconditioner",
    "score_and_curvature",
    "secant_curvature",
    "smooth",
]
