"""The pyfunc face of a scorelab score model (MLflow "models from code"): predict(x) gives scores.

Input: an (n, d) array of flattened points; params ``sigma`` (a noise level, for noise-conditional
networks). Output: the (n, d) scores. Needs scorelab and its model plugins installed.
"""

import mlflow.pyfunc
import numpy as np
import torch
from mlflow.models import set_model


class ScoreModelPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pathlib import Path

        from scorelab.training.export import load_network

        self.network, self.spec = load_network(Path(context.artifacts["spec"]).parent.parent)

    def predict(self, context, model_input, params=None):
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32)).reshape(-1, *self.spec["event_shape"])
        if not self.network.noise_conditional:
            return self.network(x).reshape(len(x), -1).numpy()
        sigma = (params or {}).get("sigma") or self.spec["default_sigma"]
        return self.network(x, sigma).reshape(len(x), -1).numpy()


set_model(ScoreModelPyfunc())
