from .gaussian import Gaussian
from .gmm import GMM

TARGETS = [Gaussian, GMM]
