"""Trained networks as MLflow models: written as a pyfunc model directory, read back by URI.

The directory is an ordinary MLflow pyfunc model (``MLmodel``, environment files) whose artifacts
are ``weights.pt`` (a state dict, loaded with ``weights_only``: no pickled code runs) and
``spec.json`` (the model plugin's name and hyperparameters, the event shape, the noise levels it
was trained on). ``mlflow.pyfunc.load_model(uri).predict(frame, params={"sigma": s})`` gives scores
of the flattened points in ``frame`` (columns x0, x1, ...);
scorelab itself rebuilds the network from the spec through the plugin host, so the oracle can
differentiate through it. Nothing is fetched from outside: the store is all it needs.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.pt"
FORMAT = 1

#: The URIs a comparison's ``score`` key accepts for a trained model.
MODEL_URI = re.compile(r"runs:/[\w\-]+/[\w\-./]+|models:/[\w\-. ]+(/\d+|@[\w\-]+)")


def check_model_uri(uri: str) -> None:
    """ValueError unless ``uri`` is ``runs:/<run-id>/<path>`` or ``models:/<name>/<version>`` (or ``@alias``)."""
    if not MODEL_URI.fullmatch(uri):
        raise ValueError(f"'{uri}' is not a model URI: expected runs:/<run-id>/model or models:/<name>/<version>")


def save_model_dir(path: Path, network: torch.nn.Module, spec: dict[str, Any]) -> None:
    """Write ``network`` (its weights) and ``spec`` as an MLflow pyfunc model directory at ``path``."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    import scorelab

    with tempfile.TemporaryDirectory() as tmp:
        weights, spec_file = Path(tmp) / WEIGHTS_FILE, Path(tmp) / SPEC_FILE
        torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
        spec_file.write_text(json.dumps({"format": FORMAT, **spec}, indent=2))
        d = math.prod(spec["event_shape"])
        example = pd.DataFrame(np.zeros((2, d), dtype=np.float32), columns=[f"x{i}" for i in range(d)])
        signature = infer_signature(example, example, params={"sigma": float(spec.get("default_sigma") or 0.0)})
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with warnings.catch_warnings():  # MLflow asks for an input example, which would run the model
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                str(path), python_model=str(Path(__file__).with_name("_pyfunc.py")),
                artifacts={"weights": str(weights), "spec": str(spec_file)}, signature=signature,
                pip_requirements=[f"scorelab=={scorelab.__version__}", f"torch>={torch.__version__.split('+')[0]}"])


def download(uri: str, tracking_uri: str | None = None) -> Path:
    """The local directory of a model URI (copied out of the store)."""
    from mlflow.artifacts import download_artifacts

    check_model_uri(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        if uri.startswith("models:/"):  # resolved in this store's registry, not the process-wide one
            uri = _registry_source(uri, tracking_uri)
        return Path(download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))
    except Exception as exc:
        raise LookupError(f"cannot load the model at '{uri}' from {tracking_uri or 'the default store'}: "
                          f"{type(exc).__name__}: {exc}") from None


def _registry_source(uri: str, tracking_uri: str | None) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name, _, ref = uri.removeprefix("models:/").rpartition("@" if "@" in uri else "/")
    version = client.get_model_version_by_alias(name, ref).version if "@" in uri else ref
    return client.get_model_version_download_uri(name, version)


def load_network(model_dir: Path, *, device=None, dtype=None, host=None) -> tuple[torch.nn.Module, dict]:
    """(network, spec) rebuilt from a model directory written by :func:`save_model_dir`."""
    base = Path(model_dir) / "artifacts"
    if not (base / SPEC_FILE).is_file():
        raise LookupError(f"{model_dir} is not a scorelab score model (no artifacts/{SPEC_FILE})")
    spec = json.loads((base / SPEC_FILE).read_text())
    if spec.get("format") != FORMAT:
        raise LookupError(f"{model_dir}: model format {spec.get('format')} is not supported (expected {FORMAT})")
    if host is None:
        from scorelab.plugins import host as default_host

        host = default_host()
    params = dict(spec["model"])
    cls = host.get("model", params.pop("name"))
    network = cls(**params).build(tuple(spec["event_shape"]))
    network.load_state_dict(torch.load(base / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    network.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return network, spec
