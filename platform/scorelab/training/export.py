"""Trained networks as MLflow models: written as a pyfunc model directory, read back by URI.

The directory is an ordinary MLflow pyfunc model (``MLmodel``, environment files) whose artifacts
are ``weights.pt`` (a state dict, loaded with ``weights_only``: no pickled code runs) and
``spec.json`` (the model plugin's name and hyperparameters, the event shape, the noise levels it
was trained on). ``mlflow.pyfunc.load_model(uri).predict(frame, params={"sigma": s})`` gives scores
of the flattened points in ``frame`` (columns x0, x1, ...);
scorelab itself rebuilds the network from the spec through the plugin host, so the oracle can
differentiate through it. Nothing is fetched from outside: the store is all it needs.

A directory that is damaged or edited (weights cut short or not a state dict, a spec that is not JSON
or whose hyperparameters are invalid, weights that do not fit the spec's architecture) is refused
with one :class:`ModelArtifactError` naming the run, the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ScorelabError
from ..sources import ModelScore
from ..store import check_model_uri

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.pt"
FORMAT = 1


class ModelArtifactError(ScorelabError, LookupError):
    """A model that cannot be used: not there, damaged, or its weights do not fit its spec. A
    LookupError too, so a comparison reports it at its ``score`` key, as it does a missing model."""


class UnreadableFile(ValueError):
    """A torch file that does not load; the message says why, in a few words."""


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
        store = tracking_uri or "the default store"
        raise ModelArtifactError(f"cannot load the model at '{uri}' from {store}: {type(exc).__name__}: {exc}. "
                                 "A runs:/ URI is looked up in that store only; run from the project folder that "
                                 "trained it, or name its store with --tracking-uri or MLFLOW_TRACKING_URI "
                                 "(sqlite:////absolute/path/runs/mlflow.db)") from None


def model_source(uri: str, *, tracking_uri: str | None = None, device=None, dtype=None, host=None) -> ModelScore:
    """The trained model at an MLflow URI (``runs:/<run-id>/model``, ``models:/<name>/<version>``) as a
    score source."""
    network, spec = load_network(download(uri, tracking_uri), device=device, dtype=dtype, host=host, origin=uri)
    return ModelScore(network, spec.get("default_sigma"), uri)


def _registry_source(uri: str, tracking_uri: str | None) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name, _, ref = uri.removeprefix("models:/").rpartition("@" if "@" in uri else "/")
    version = client.get_model_version_by_alias(name, ref).version if "@" in uri else ref
    return client.get_model_version_download_uri(name, version)


def load_network(model_dir: Path, *, device=None, dtype=None, host=None,
                 origin: str | None = None) -> tuple[torch.nn.Module, dict]:
    """(network, spec) rebuilt from a model directory written by :func:`save_model_dir`. ``origin`` is the
    URI it was downloaded from, so that errors name the run; each problem with the directory is one
    :class:`ModelArtifactError` that says which file is wrong and how."""
    who = _origin_name(origin) or str(model_dir)
    base = Path(model_dir) / "artifacts"
    spec = _read_spec(base / SPEC_FILE, who)
    if host is None:
        from scorelab.plugins import host as default_host

        host = default_host()
    name, model, network = _build(host, spec, who)
    weights = _read_weights(base / WEIGHTS_FILE, who)
    _check_fit(network, weights, _describe(name, model), who)
    network.load_state_dict(weights)
    network.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return network, spec


def read_torch_file(path: Path) -> Any:
    """``torch.load`` that runs no pickled code (``weights_only``); :class:`UnreadableFile` saying briefly
    why a file does not load, in words fit for a file of unknown origin (never advice to load it unsafely)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except EOFError:
        raise UnreadableFile("the file is empty or cut short") from None
    except pickle.UnpicklingError:
        raise UnreadableFile("its content is not a torch file of tensors") from None
    except RuntimeError as exc:
        if "zip archive" in str(exc):
            raise UnreadableFile("not a complete torch archive: cut short or damaged") from None
        raise UnreadableFile(_first_sentence(exc)) from None
    except Exception as exc:
        raise UnreadableFile(_first_sentence(exc)) from None


def _first_sentence(exc: Exception) -> str:
    text = str(exc).strip().split("\n")[0].split(". ")[0][:200]
    return type(exc).__name__ if not text or "weights_only" in text else f"{type(exc).__name__}: {text}"


def _origin_name(uri: str | None) -> str | None:
    """'run <id>' for a ``runs:/`` URI, the URI itself for a registry one."""
    if uri is None:
        return None
    if uri.startswith("runs:/"):
        return f"run {uri.removeprefix('runs:/').split('/')[0]}"
    return f"model {uri}"


_JSON_TYPES = {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "boolean"}


def _read_spec(path: Path, who: str) -> dict:
    if not path.is_file():
        raise ModelArtifactError(f"{who}: not a scorelab score model (no artifacts/{SPEC_FILE})")
    try:
        spec = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg}, line {exc.lineno} column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ModelArtifactError(f"{SPEC_FILE} of {who} is not valid JSON{where}") from None

    def bad(message: str):
        raise ModelArtifactError(f"{SPEC_FILE} of {who}: {message}")

    if not isinstance(spec, dict):
        bad(f"expected a JSON object, got a {_JSON_TYPES.get(type(spec), 'null')}")
    if spec.get("format") != FORMAT:
        bad(f"model format {spec.get('format')!r} is not supported (expected {FORMAT})")
    for key in ("model", "event_shape"):
        if key not in spec:
            bad(f"missing key '{key}'")
    shape = spec["event_shape"]
    if not (isinstance(shape, list) and shape and all(type(n) is int and n > 0 for n in shape)):
        bad(f"event_shape: expected a list of positive integers, got {shape!r}")
    return spec


def _build(host, spec: dict, who: str) -> tuple[str, Any, torch.nn.Module]:
    """The spec's model plugin (its registered name and instance) and its network, the hyperparameters
    checked as a config's are."""
    from .. import params as P
    from ..errors import ConfigError

    file = f"{SPEC_FILE} of {who}"
    try:
        name, model = P.build(host, "model", spec["model"], "model", file)
    except ConfigError as exc:
        raise ModelArtifactError(str(exc)) from None
    shape = tuple(spec["event_shape"])
    try:
        network = model.build(shape)
    except (ValueError, TypeError) as exc:
        raise ModelArtifactError(f"{file}: cannot build model {name} for event_shape {list(shape)}: "
                                 f"{exc}") from None
    sigma = spec.get("default_sigma")
    if network.noise_conditional and not (type(sigma) in (int, float) and math.isfinite(sigma) and sigma > 0):
        raise ModelArtifactError(f"{file}: default_sigma: a noise-conditional model needs a noise level > 0, "
                                 f"got {sigma!r}")
    return name, model, network


def _describe(name: str, model) -> str:
    """'model mlp, hidden=8, layers=2': the name and the hyperparameters that differ from their defaults."""
    from ..contracts import hyperparameters
    from ..params import fields_of

    defaults = {k: default for k, (_, default) in fields_of(type(model)).items()}
    return ", ".join([f"model {name}"] + [f"{k}={v}" for k, v in hyperparameters(model).items()
                                                if defaults.get(k) != v])


def _read_weights(path: Path, who: str) -> dict:
    if not path.is_file():
        raise ModelArtifactError(f"{WEIGHTS_FILE} of {who} is missing")
    try:
        weights = read_torch_file(path)
    except UnreadableFile as exc:
        raise ModelArtifactError(f"{WEIGHTS_FILE} of {who} is not a readable state dict (truncated, or not "
                                 f"written by scorelab): {exc}") from None
    if not isinstance(weights, dict):
        raise ModelArtifactError(f"{WEIGHTS_FILE} of {who} is not a state dict (it holds a "
                                 f"{type(weights).__name__})")
    return weights


def _check_fit(network: torch.nn.Module, weights: dict, architecture: str, who: str) -> None:
    """The first parameter where the weights and the spec's architecture disagree, named."""
    expected = network.state_dict()

    def bad(what: str):
        raise ModelArtifactError(f"{WEIGHTS_FILE} of {who} does not match the architecture in {SPEC_FILE} "
                                 f"({architecture}): {what}")

    for name, tensor in expected.items():
        value = weights.get(name)
        if value is None:
            bad(f"parameter '{name}' is missing")
        if not isinstance(value, torch.Tensor):
            bad(f"parameter '{name}' is a {type(value).__name__}, not a tensor")
        if value.shape != tensor.shape:
            bad(f"parameter '{name}' has shape {tuple(value.shape)}, the architecture's has {tuple(tensor.shape)}")
    extra = [k for k in weights if k not in expected]
    if extra:
        bad(f"it has a parameter '{extra[0]}', which the architecture has not")
