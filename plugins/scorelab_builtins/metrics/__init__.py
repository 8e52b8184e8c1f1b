"""Built-in metrics of sample quality against a reference or the target; lower is better."""

from .digits import DigitsFD, DigitsNNCopy
from .energy import EnergyDistance
from .ksd import KSD
from .marginal_ks import MaxMarginalKS
from .mmd import MMD
from .mode_weight import ModeWeightError
from .moments import CovarianceError, MeanError
from .nll import NLL
from .sliced_wasserstein import SlicedWasserstein
from .whitened import GaussianKL, MaxMomentError, MaxVarianceError, WhitenedCovarianceError, WhitenedMeanError

METRICS = [
    SlicedWasserstein,
    MMD,
    EnergyDistance,
    KSD,
    NLL,
    MeanError,
    CovarianceError,
    ModeWeightError,
    DigitsFD,
    DigitsNNCopy,
    WhitenedCovarianceError,
    MaxVarianceError,
    WhitenedMeanError,
    MaxMomentError,
    GaussianKL,
    MaxMarginalKS,
]
