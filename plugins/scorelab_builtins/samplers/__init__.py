from .annealed_langevin import AnnealedLangevin
from .langevin import Langevin

SAMPLERS = [Langevin, AnnealedLangevin]
