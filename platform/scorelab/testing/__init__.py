"""scorelab.testing: the conformance kit a plugin author runs in their own tests.

Each ``check_*`` takes a plugin class (or an instance) and returns a :class:`Report` of readable
failures; ``report.assert_ok()`` raises with the whole report when anything failed::

    from scorelab.testing import check_sampler

    def test_conforms():
        check_sampler(MySampler).assert_ok()

``scorelab check-plugin NAME`` runs the same checks on everything an installed plugin registers.
See docs/plugins.md for what each check covers and how a plugin declares a known bias.
"""

from ._metric import check_metric
from ._model import check_model
from ._objective import check_objective
from ._report import Failure, Report
from ._sampler import check_sampler
from ._target import check_target

CHECKS = {
    "sampler": check_sampler,
    "objective": check_objective,
    "model": check_model,
    "target": check_target,
    "metric": check_metric,
}

__all__ = ["CHECKS", "Failure", "Report", "check_metric", "check_model", "check_objective", "check_sampler",
           "check_target"]
