from .banana import Banana
from .digits import Digits
from .funnel import Funnel
from .gaussian import Gaussian
from .gmm import GMM
from .toy2d import Checkerboard, Rings, SwissRoll, TwoMoons

TARGETS = [Gaussian, GMM, Banana, Funnel, TwoMoons, SwissRoll, Checkerboard, Rings, Digits]
