"""Device choice: ``auto`` is CUDA when present, else the CPU. Configs are checked against the devices
this machine has, and against their memory, before any work (:func:`unavailable`, :func:`memory_shortfall`)."""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import ConfigError

#: Tensors of a run's size held at once, roughly: the chains, their scores, proposals and noise, the
#: initial chains, the reference and quality-floor sample sets, a metric's working copies.
COPIES = 16
BYTES = {"float32": 4, "float64": 8}


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device a config names; one this machine lacks is a ConfigError listing those it has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reason = unavailable(name)
    if reason:
        raise ConfigError(reason, key="device")
    return torch.device(name)


def available_devices() -> list[str]:
    """The device names this machine can run on, as a config writes them."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def unavailable(name: str) -> str | None:
    """Why device ``name`` cannot be used on this machine, or None when it can."""
    if name in available_devices():
        return None
    kind = name.split(":")[0]
    has = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}.get(kind, True)
    what = f"no {kind.upper()} device" if not has else f"no device '{name}'"
    return f"device '{name}' was asked for, but this machine has {what}; valid here: {', '.join(available_devices())}"


def run_memory(rows: int, dim: int, dtype: str) -> int:
    """Bytes a run on ``rows`` points of dimension ``dim`` needs, roughly: :data:`COPIES` tensors of
    that size. It catches sizes no device can hold, not tight ones (a metric or a model may need more)."""
    return rows * dim * BYTES[dtype] * COPIES


def memory_of(name: str) -> int | None:
    """Total bytes of memory of device ``name`` (the machine's RAM for the CPU), or None when unknown.
    Total, not free: what others use now may be free by the time the run needs it."""
    device = resolve_device(name)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not every system says
            return None
    return None  # mps shares the machine's memory in ways torch does not report


def memory_shortfall(needed: int, name: str) -> str | None:
    """Why ``needed`` bytes will not fit on device ``name``, or None when they may."""
    have = memory_of(name)
    if have is None or needed <= have:
        return None
    device = resolve_device(name)
    where = "this machine's memory" if device.type == "cpu" else f"the memory of {device}"
    return f"needs about {size_text(needed)}, more than the {size_text(have)} of {where}"


def size_text(n: float) -> str:
    """Bytes for a reader: '512 B', '1.5 GiB', '8.7e+05 EiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def cpu_model() -> str:
    """The host CPU's model name (Linux's /proc/cpuinfo, else what Python's platform module says): CPU
    timings are the machine's, and two x86_64 machines may differ by 2x on the same run."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


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
