"""Built-in metrics of sample quality against a reference or the target; lower is better."""

from .mmd import MMD
from .mode_weight import ModeWeightError
from .moments import CovarianceError, MeanError
from .sliced_wasserstein import SlicedWasserstein

METRICS = [SlicedWasserstein, MMD, MeanError, CovarianceError, ModeWeightError]
