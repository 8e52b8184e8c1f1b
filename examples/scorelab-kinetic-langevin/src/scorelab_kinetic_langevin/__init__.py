"""scorelab-kinetic-langevin: a third-party scorelab plugin adding the ``kinetic_langevin`` sampler.

scorelab finds this module through the ``scorelab`` entry point group (see pyproject.toml) and calls
its hooks; nothing is registered on import.
"""

from scorelab.hookspecs import hookimpl

from .sampler import KineticLangevin, KineticLangevinInfo, KineticLangevinState

__all__ = ["SCORELAB_API_VERSION", "KineticLangevin", "KineticLangevinInfo", "KineticLangevinState"]

SCORELAB_API_VERSION = 1


@hookimpl
def register_samplers(register):
    register(KineticLangevin)
