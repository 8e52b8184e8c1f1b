"""Device choice: ``auto`` is CUDA when present, else the CPU."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{name}' was asked for, but no CUDA device is available (use 'auto' or 'cpu')")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def cpu_threads(n: int):
    """Run with ``n`` torch intra-op threads (0 leaves torch's choice), restoring the old count after.

    Sampling steps are many small tensor operations: on a shared CPU, intra-op threads wait on each
    other and made a 2-D mixture's score 20-30x slower with 2 threads than with 1 (measured with the
    machine's other core busy)."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
