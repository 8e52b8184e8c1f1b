"""Built-in training objectives: ``loss(model, batch, generator) -> scalar``, ``noise_levels()``
(the sigmas the model learns, 0 for the data itself), and ``requires`` (what the model or target
must provide). Objectives that need the target (``esm``) get it through ``bind(target)``."""

from .dsm import DSM
from .dsm_multi import DSMMulti
from .dsm_second_order import DSMSecondOrder
from .esm import ESM
from .ism import ISM
from .ssm import SSM
from .ssm_vr import SSMVR

OBJECTIVES = [ESM, ISM, SSM, SSMVR, DSM, DSMMulti, DSMSecondOrder]
