"""The pyfunc face of a scorelab score model (MLflow "models from code"): predict(x) gives scores.

Input: a DataFrame of n flattened points (columns x0 .. x{d-1}); params ``sigma`` (a noise level, for
noise-conditional networks). Output: the (n, d) scores, same columns. Needs scorelab and its model
plugins installed.
"""

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import set_model


class ScoreModelPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pathlib import Path

        from scorelab.training.export import load_network

        self.network, self.spec = load_network(Path(context.artifacts["spec"]).parent.parent)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        x = torch.as_tensor(np.array(model_input, dtype=np.float32)).reshape(-1, *self.spec["event_shape"])
        sigma = (params or {}).get("sigma") or self.spec["default_sigma"]
        s = self.network(x, sigma) if self.network.noise_conditional else self.network(x)
        return pd.DataFrame(s.reshape(len(x), -1).numpy(), columns=model_input.columns)


set_model(ScoreModelPyfunc())
