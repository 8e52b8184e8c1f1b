from .adaptive_langevin import AdaptiveLangevin
from .annealed_langevin import AnnealedLangevin
from .curvature_step_langevin import CurvatureStepLangevin
from .ensemble_langevin import EnsembleLangevin
from .ensemble_mala import EnsembleMala
from .hessian_diag_langevin import HessianDiagLangevin
from .langevin import Langevin
from .lowrank_langevin import LowRankLangevin
from .mala import Mala
from .ozaki_langevin import OzakiLangevin
from .probability_flow_ode import ProbabilityFlowODE
from .rmsprop_langevin import RmspropLangevin

SAMPLERS = [
    Langevin,
    AnnealedLangevin,
    Mala,
    RmspropLangevin,
    HessianDiagLangevin,
    AdaptiveLangevin,
    CurvatureStepLangevin,
    OzakiLangevin,
    LowRankLangevin,
    EnsembleLangevin,
    EnsembleMala,
    ProbabilityFlowODE,
]
