from .digits import Digits
from .gaussian import Gaussian
from .gmm import GMM
from .toy2d import Checkerboard, Rings, SwissRoll, TwoMoons

TARGETS = [Gaussian, GMM, TwoMoons, SwissRoll, Checkerboard, Rings, Digits]
