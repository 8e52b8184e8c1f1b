"""Watching a plugin's code while it runs: host synchronisations, and use of global random state.

Host syncs. On a GPU, reading a tensor's value on the host (``.item()``, ``float(t)``, ``if t > 0:``,
``.tolist()``, ``.cpu()``, ``.numpy()``, boolean-mask indexing, ``nonzero``) waits for every queued
kernel. :class:`HostSyncWatch` detects these calls on any device with a TorchFunctionMode: torch
routes each of them through ``__torch_function__``, so the watch sees them even on the CPU, where
they cost nothing yet. On CUDA it also turns on ``torch.cuda.set_sync_debug_mode("warn")``, which
catches syncs inside torch's own kernels. What it cannot see: NumPy or Python code on values that
were already on the host, and syncs in custom extensions that bypass torch's Python API.

Global random state. :func:`scrambled_global_rng` reseeds torch's, NumPy's and Python's global
generators for the duration of a block and restores them after, so two runs that should depend
only on the generator they were given can be made to disagree if they secretly use global state.
"""

from __future__ import annotations

import contextlib
import os
import random
import traceback
import warnings

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

_TORCH_DIR = os.path.dirname(torch.__file__)
_KIT_DIR = os.path.dirname(__file__)

# Tensor methods that read values on the host, with what to do instead.
_SYNCING = {
    "item": "keep the value as a 0-d tensor",
    "tolist": "keep it a tensor",
    "numpy": "keep it a tensor",
    "cpu": "keep tensors on the chains' device",
    "__bool__": "use torch.where instead of branching on a tensor's value",
    "__float__": "keep the value as a tensor (float(t) and math.* on tensors read it on the host)",
    "__int__": "keep the value as a tensor",
    "__index__": "keep the value as a tensor",
    "__complex__": "keep the value as a tensor",
    "__format__": "format tensors only outside the step",
    "__repr__": "print tensors only outside the step",
    "nonzero": "use torch.where with a mask",
    "masked_select": "use torch.where with a mask",
    "unique": "avoid data-dependent shapes inside a step",
}


def _name(func) -> str:
    return getattr(func, "__name__", str(func))


def _where() -> str:
    """The innermost frame of the plugin's own code (not torch's, not the kit's)."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith((_TORCH_DIR, _KIT_DIR)):
            return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
    return "unknown place"


class HostSyncWatch(TorchFunctionMode):
    """Records every call that would make the host wait for the device, with where it was made."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.events: list[str] = []
        self._cuda_mode = None

    def _record(self, what: str, advice: str) -> None:
        event = f"{what} at {_where()} ({advice})"
        if event not in self.events:
            self.events.append(event)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        if name in _SYNCING:
            self._record(f"Tensor.{name}()" if not name.startswith("__") else name, _SYNCING[name])
        elif name == "__getitem__" and len(args) > 1 and _has_bool_mask(args[1]):
            self._record("indexing with a boolean mask", "its result's shape depends on values: use torch.where")
        return func(*args, **kwargs)

    def __enter__(self):
        if self.device.type == "cuda":
            self._cuda_mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("warn")
            self._warnings = warnings.catch_warnings(record=True)
            self._caught = self._warnings.__enter__()
            warnings.simplefilter("always")
        return super().__enter__()

    def __exit__(self, *exc):
        out = super().__exit__(*exc)
        if self._cuda_mode is not None:
            torch.cuda.set_sync_debug_mode(self._cuda_mode)
            self._warnings.__exit__(None, None, None)
            for w in self._caught:
                if "synchroniz" in str(w.message):
                    self._record(f"a synchronizing CUDA operation ({w.message})", "see torch.cuda.set_sync_debug_mode")
            self._cuda_mode = None
        return out


def _has_bool_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


@contextlib.contextmanager
def scrambled_global_rng(seed: int):
    """Reseed torch's (CPU and CUDA), NumPy's and Python's global generators with ``seed``; restore after."""
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    np_state, py_state = np.random.get_state(), random.getstate()
    torch.manual_seed(seed)  # seeds every CUDA device too
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(np_state)
        random.setstate(py_state)
