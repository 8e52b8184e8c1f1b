"""Steps/s of scorelab beside BlackJAX, in one process and one run, on the same device.

Contenders on each row, all running the same update on the same chains:

- ``bare torch``: the update written out by hand, the score called directly (no oracle, no
  divergence tracking, no Info): the floor of torch eager;
- ``scorelab eager``: ``scorelab.chain.run_chain`` with the built-in sampler and a ``ScoreOracle``;
- ``scorelab compiled``: the same with ``run_chain(..., compile="inductor")``, taking scorelab's
  steps a call (``scorelab.compiled.STEPS_PER_CALL``: 4 on the CPU, 8 on a GPU), where this
  scorelab's ``run_chain`` has the keyword (else the column is left out and the run says so);
- ``scorelab cuda_graph``, on a GPU only: the same with ``compile="cuda_graph"``;
- ``compiled, keyed``: ``scorelab compiled`` (``cuda_graph`` on a GPU) on a comparison's ``rng: keyed``
  (``scorelab.rng``): its normals (and MALA's uniforms) made by Philox inside the compiled step, not
  drawn by torch first; another random stream, the same update;
- ``compiled K/call``, one for each K of ``--steps-per-call``: ``scorelab compiled`` (``cuda_graph`` on
  a GPU) taking K steps a call where it may (``scorelab.compiled.STEPS_PER_CALL``, whose default is 4
  on the CPU and 8 on a GPU): what taking several a call gains or loses, measured in the same run;
  and ``compiled, keyed K/call``, the same on a keyed stream;
- ``blackjax``: jit + ``lax.scan`` of BlackJAX's step. For ULA that is BlackJAX's Euler integrator
  (``blackjax.mcmc.diffusions.overdamped_langevin``, the one its MALA composes) applied to all chains
  at once, the score given in place of the log density's gradient; for MALA ``blackjax.mala`` with a
  fixed step, vmapped over chains (one key per chain per step, as its users write it).

Rows: ULA on a diagonal Gaussian d = 100 (condition number 10, as ``step_loop.py``), 1e4 chains
(1e6 only on a GPU); ULA with an MLP score d -> 256 -> 256 -> d (tanh, fixed random weights, the
same in torch and JAX) at d = 2 and d = 64, 1e4 chains; MALA on the d = 50 Gaussian with condition
number 1000, 1000 chains, float64. Every timed call is an init plus ``--steps`` steps.

Method, for a shared machine where one timing is noise: on a CPU the whole process is pinned to one
core (``--core``), so each side computes on exactly one core (XLA's CPU runtime no longer honours
its thread flags and, unpinned, spreads a matmul over every core); each
contender is warmed up (compiled) first; then ``--repeats`` rounds, in each of which every
contender runs once (the order rotating from round to round). Reported per contender: the median
steps/s and its min-max over rounds; per row, the median over rounds of the per-round ratio to
BlackJAX, and its min-max. On a GPU, JAX is asked for full float32 matmuls (torch's default),
and not to preallocate the card's memory.

    python benchmarks/peers.py                       # every row that fits the device
    python benchmarks/peers.py --rows mala --quick   # a smoke run at tiny sizes

JAX and BlackJAX come from the ``bench`` extra (``pip install -e ".[bench]"``); without them the
torch columns run alone.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import inspect
import json
import math
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scorelab.chain import run_chain
from scorelab.device import cpu_model, device_name, resolve_device, synchronize
from scorelab.oracle import ScoreOracle
from scorelab.sources import ExactScore, ModelScore
from scorelab_builtins.models import MLP
from scorelab_builtins.samplers import Langevin, Mala
from scorelab_builtins.targets import Gaussian

try:  # a scorelab before the rng key has no keyed column
    from scorelab.rng import KeyedStream
except ImportError:
    KeyedStream = None

BLACKJAX = "blackjax"
KEYED = "compiled, keyed"
# Optional, as the K/call columns: a failure leaves them out.
COMPILED = ("scorelab compiled", "scorelab cuda_graph", KEYED)
HIDDEN = 256


@dataclass(frozen=True)
class Row:
    what: str
    sampler: str  # "ula" or "mala"
    score: str  # "gaussian" or "mlp"
    dim: int
    chains: int
    dtype: str
    condition_number: float = 1.0  # Gaussian rows
    step_size: float = 0.01
    gpu_only: bool = False


ROWS = {
    "gaussian": Row("ULA, diagonal Gaussian d=100 (cond. 10)", "ula", "gaussian", 100, 10_000, "float32", 10.0),
    "gaussian-1e6": Row("ULA, diagonal Gaussian d=100 (cond. 10)", "ula", "gaussian", 100, 1_000_000, "float32",
                        10.0, gpu_only=True),
    "mlp2": Row(f"ULA, MLP score 2-{HIDDEN}-{HIDDEN}-2 (tanh)", "ula", "mlp", 2, 10_000, "float32"),
    "mlp64": Row(f"ULA, MLP score 64-{HIDDEN}-{HIDDEN}-64 (tanh)", "ula", "mlp", 64, 10_000, "float32"),
    # h = 0.2 x the smallest variance (1e-3): MALA accepts often enough for the chains to move.
    "mala": Row("MALA, Gaussian d=50 (cond. 1000)", "mala", "gaussian", 50, 1_000, "float64", 1000.0, 2e-4),
}
QUICK_CHAINS = 256


@dataclass
class Contender:
    name: str
    run: Callable[[], Any]  # one init plus the row's steps; returns what to wait for
    finish: Callable[[Any], None]  # waits until the device is done with it


# -- the problems, torch side ----------------------------------------------------------------------

@dataclass
class Problem:
    x0: torch.Tensor
    score: Callable[[torch.Tensor], torch.Tensor]  # the score called directly
    log_prob_and_score: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None
    source: Any  # what the oracle wraps
    jax_inputs: dict[str, np.ndarray]  # the same problem's numbers for the JAX side


def mlp_weights(dim: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed random (W, b) per layer, W of shape (out, in) as ``nn.Linear`` holds it, in float64."""
    g = torch.Generator().manual_seed(0)
    sizes = [dim, HIDDEN, HIDDEN, dim]
    return [(torch.randn(o, i, generator=g, dtype=torch.float64) / math.sqrt(i),
             0.1 * torch.randn(o, generator=g, dtype=torch.float64)) for i, o in zip(sizes, sizes[1:], strict=False)]


def make_problem(row: Row, chains: int, device: torch.device) -> Problem:
    dtype = getattr(torch, row.dtype)
    g = torch.Generator().manual_seed(1)
    if row.score == "gaussian":
        target = Gaussian(dim=row.dim, condition_number=row.condition_number).to(device, dtype)
        x0 = target.sample(chains, torch.Generator(device).manual_seed(1)) if row.sampler == "mala" else \
            torch.randn(chains, row.dim, generator=g, dtype=torch.float64).to(device, dtype)
        numbers = {"mean": target.mean, "variance": torch.diagonal(target.covariance)}
        return Problem(x0, lambda x: target.score(x, 0.0), target.log_prob_and_score, ExactScore(target),
                       {k: v.cpu().numpy() for k, v in numbers.items()})
    weights = mlp_weights(row.dim)
    net = MLP(hidden=HIDDEN, layers=2, activation="tanh").build((row.dim,))
    with torch.no_grad():
        for layer, (w, b) in zip((net.body[0], net.body[2], net.head), weights, strict=True):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    net = net.to(device, dtype).eval().requires_grad_(False)
    x0 = torch.randn(chains, row.dim, generator=g, dtype=torch.float64).to(device, dtype)
    numbers = {f"w{i}": w.T.numpy() for i, (w, _) in enumerate(weights)} | {f"b{i}": b.numpy()
                                                                            for i, (_, b) in enumerate(weights)}
    return Problem(x0, net, None, ModelScore(net), numbers)


# -- the torch contenders --------------------------------------------------------------------------

def bare_ula(score, x, steps: int, h: float, generator: torch.Generator) -> torch.Tensor:
    s, noise = score(x), math.sqrt(2 * h)
    for _ in range(steps):
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = torch.add(x, s, alpha=h).add_(z, alpha=noise)
        s = score(x)
    return x


def bare_mala(log_prob_and_score, x, steps: int, h: float, generator: torch.Generator) -> torch.Tensor:
    lp, s = log_prob_and_score(x)
    noise = math.sqrt(2 * h)
    for _ in range(steps):
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = x + h * s + noise * z
        lp_y, s_y = log_prob_and_score(y)
        log_a = lp_y - lp + ((y - x - h * s).square().sum(1) - (x - y - h * s_y).square().sum(1)) / (4 * h)
        u = torch.rand(log_a.shape, generator=generator, device=x.device, dtype=x.dtype)
        accept = torch.log(u) < log_a
        x, s = torch.where(accept[:, None], y, x), torch.where(accept[:, None], s_y, s)
        lp = torch.where(accept, lp_y, lp)
    return x


def torch_contenders(row: Row, problem: Problem, steps: int, device: torch.device,
                     steps_per_call: tuple[int, ...] = ()) -> list[Contender]:
    h = row.step_size

    def generator():
        return torch.Generator(device).manual_seed(0)

    def finish(_):
        synchronize(device)

    def bare():
        with torch.no_grad():
            if row.sampler == "ula":
                return bare_ula(problem.score, problem.x0, steps, h, generator())
            return bare_mala(problem.log_prob_and_score, problem.x0, steps, h, generator())

    sampler = Langevin(step_size=h) if row.sampler == "ula" else Mala(step_size=h, warmup=0)

    def scorelab(k: int | None = None, keyed: bool = False, **kw):
        def go():
            with calls_of(k, device):
                numbers = KeyedStream(0, device) if keyed else generator()
                return run_chain(sampler, ScoreOracle(problem.source), problem.x0, steps + 1, numbers, **kw).state.x
        return go

    out = [Contender("bare torch", bare, finish), Contender("scorelab eager", scorelab(), finish)]
    if "compile" in inspect.signature(run_chain).parameters:
        out.append(Contender("scorelab compiled", scorelab(compile="inductor"), finish))
        if device.type == "cuda":  # inductor's graphs replayed as CUDA graphs: fewer launches a step
            out.append(Contender("scorelab cuda_graph", scorelab(compile="cuda_graph"), finish))
        mode = "cuda_graph" if device.type == "cuda" else "inductor"
        if KeyedStream is not None:  # a comparison's rng: keyed, its noise made in the compiled step
            out.append(Contender(KEYED, scorelab(keyed=True, compile=mode), finish))
        out += [Contender(per_call(k), scorelab(k, compile=mode), finish) for k in steps_per_call]
        if KeyedStream is not None:
            out += [Contender(per_call(k, keyed=True), scorelab(k, keyed=True, compile=mode), finish)
                    for k in steps_per_call]
    return out


def compiled_column(name: str) -> bool:
    """A compiled contender: warmed up twice, and left out of the run if it fails."""
    return name in COMPILED or name.startswith("compiled")


def per_call(k: int, keyed: bool = False) -> str:
    """The name of the contender taking ``k`` compiled steps a call (``keyed``: on a keyed stream)."""
    return f"{KEYED if keyed else 'compiled'} {k}/call"


@contextlib.contextmanager
def calls_of(k: int | None, device: torch.device):
    """scorelab's compiled steps taken ``k`` a call on ``device`` (None: as scorelab takes them)."""
    from scorelab import compiled

    table = getattr(compiled, "STEPS_PER_CALL", None)
    if k is None or not isinstance(table, dict):
        yield
        return
    before = dict(table)
    table[device.type] = k
    try:
        yield
    finally:
        table.clear()
        table.update(before)


# -- the JAX side ----------------------------------------------------------------------------------

def load_jax(device: torch.device):
    """(jax, blackjax, the JAX device) or None, saying why. Threads and memory are set before the import."""
    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares the card
    try:
        import blackjax
        import jax
    except ImportError as e:
        print(f"JAX/BlackJAX not importable ({e}): running the torch columns only. "
              'Install them with: pip install -e ".[bench]"')
        return None
    jax.config.update("jax_default_matmul_precision", "highest")  # torch's float32 matmuls are full precision
    platform = "gpu" if device.type == "cuda" else "cpu"
    try:
        jdev = jax.devices(platform)[0]
    except RuntimeError:
        print(f"JAX has no {platform} backend here (a GPU needs the jax build for its CUDA): "
              "running the torch columns only")
        return None
    return jax, blackjax, jdev


def jax_contender(row: Row, problem: Problem, steps: int, jax, blackjax, jdev) -> Contender:
    """jit + lax.scan of BlackJAX's step; x64 is switched on for float64 rows only, before any array."""
    jax.config.update("jax_enable_x64", row.dtype == "float64")
    jnp = jax.numpy
    dtype = jnp.dtype(row.dtype)
    h, n = row.step_size, problem.x0.shape[0]

    def put(a):
        return jax.device_put(jnp.asarray(a, dtype=dtype), jdev)

    p = {k: put(v) for k, v in problem.jax_inputs.items()}
    x0 = put(problem.x0.cpu().numpy())
    key = jax.device_put(jax.random.key(0), jdev)

    if row.sampler == "mala":
        def logdensity(x):  # one chain, (d,)
            return -0.5 * jnp.sum((x - p["mean"]) ** 2 / p["variance"])

        mala = blackjax.mala(logdensity, h)

        def run(x, key):
            def body(state, k):
                return jax.vmap(mala.step)(jax.random.split(k, n), state)[0], None
            state, _ = jax.lax.scan(body, jax.vmap(mala.init)(x), jax.random.split(key, steps))
            return state.position
    else:
        if row.score == "gaussian":
            def score(x):
                return -(x - p["mean"]) / p["variance"]
        else:
            def score(x):
                a = jnp.tanh(x @ p["w0"] + p["b0"])
                a = jnp.tanh(a @ p["w1"] + p["b1"])
                return a @ p["w2"] + p["b2"]

        zero = jnp.zeros((), dtype)
        diffusions = blackjax.mcmc.diffusions
        step = diffusions.overdamped_langevin(lambda x: (zero, score(x)))

        def run(x, key):
            def body(state, k):
                return step(k, state, h), None
            state, _ = jax.lax.scan(body, diffusions.DiffusionState(x, zero, score(x)), jax.random.split(key, steps))
            return state.position

    run = jax.jit(run)
    return Contender(BLACKJAX, lambda: run(x0, key), lambda out: out.block_until_ready())


# -- measuring -------------------------------------------------------------------------------------

def pin_to_one_core(core: int | None) -> int | None:
    """Pin every thread of this process, and those it starts later, to one core (the first one this
    process may use, unless ``core`` names another); None where the system cannot pin."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0)) if core is None else core
    for tid in os.listdir("/proc/self/task"):  # threads started before (Python's, torch's)
        try:
            os.sched_setaffinity(int(tid), {core})
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
    return core


def seconds(c: Contender, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    c.finish(c.run())
    return time.perf_counter() - t0


def measure(contenders: list[Contender], steps: int, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Steps/s per contender per round; the contenders interleaved, the order rotating per round."""
    rates: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(repeats):
        k = r % len(contenders)
        for c in contenders[k:] + contenders[:k]:
            rates[c.name].append(steps / seconds(c, device))
    return rates


def warm_up(contenders: list[Contender], device: torch.device) -> list[Contender]:
    """Run each once (the compiled path twice: torch.compile may recompile once on a value that
    changed); a compiled path or JAX that fails here is left out with its reason, not the run."""
    kept = []
    for c in contenders:
        try:
            for _ in range(2 if compiled_column(c.name) else 1):
                seconds(c, device)
        except Exception as e:  # noqa: BLE001 - an optional contender must not end the run
            if not compiled_column(c.name) and c.name != BLACKJAX:
                raise
            print(f"  {c.name} left out: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        kept.append(c)
    return kept


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(rates: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, r in rates.items():
        ratio = None
        if BLACKJAX in rates:
            ratio = spread([a / b for a, b in zip(r, rates[BLACKJAX], strict=True)])
        out[name] = {"steps_per_s": spread(r), "ratio_to_blackjax": ratio}
    return out


def fmt(s: dict[str, float] | None, digits: int) -> str:
    if s is None:
        return "-"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


RUN_TIME = "With the defaults: about 8 min on a 2-core CPU (488 and 495 s, measured 2026-11-30)."


def checkout_commit() -> str | None:
    """The commit this checkout is at, "+" appended if it has changes (other than the results the
    benchmarks append to); None outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
    try:
        head = git("rev-parse", "--short", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                     ":(top,exclude)benchmarks/results")
    except OSError:  # no git
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+" if status.stdout.strip() else "")


def positive(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=RUN_TIME)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--rows", nargs="+", choices=list(ROWS),
                   help="rows to run (default: all; gaussian-1e6 only on a GPU)")
    p.add_argument("--steps", type=positive, default=300, help="steps per timed run (default: %(default)s)")
    p.add_argument("--repeats", type=positive, default=5, help="rounds of interleaved runs (default: %(default)s)")
    p.add_argument("--chains", type=positive,
                   help="chains of every row (default: each row's; a small number measures the per-step overhead)")
    p.add_argument("--steps-per-call", type=positive, nargs="+", default=(), metavar="K",
                   help="add 'compiled K/call' and 'compiled, keyed K/call' columns for each K: scorelab's "
                        "compiled loop taking K steps a call, on the default and on a keyed stream")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: {QUICK_CHAINS} chains, 20 steps, 2 rounds")
    p.add_argument("--core", type=int, help="the CPU core to pin the run to (default: the first allowed)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/peers.jsonl"),
                   help="JSON lines, one per row and contender, appended (default: %(default)s)")
    args = p.parse_args()
    steps, repeats = (20, 2) if args.quick else (args.steps, args.repeats)
    device = resolve_device(args.device)
    core = pin_to_one_core(args.core) if device.type == "cpu" else None  # before JAX starts its thread pool
    torch.set_num_threads(1)
    peers = load_jax(device)
    if "compile" not in inspect.signature(run_chain).parameters:
        print("scorelab compiled: not available yet (this run_chain has no `compile` keyword); column left out")
    rows = args.rows or [k for k, r in ROWS.items() if not r.gpu_only or device.type == "cuda"]
    versions = {"torch": torch.__version__}
    if peers:
        versions |= {"jax": peers[0].__version__, "blackjax": peers[1].__version__}
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    commit = checkout_commit()
    print(f"device {device_name(device)} ({cpu_model()})" + (f", JAX on {peers[2].device_kind}" if peers else "")
          + (f"; pinned to core {core}" if core is not None else "; not pinned")
          + f", 1 torch intra-op thread; {steps} steps per run, {repeats} rounds; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()) + f"; commit {commit}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t_run = time.perf_counter()
    for key in rows:
        row = ROWS[key]
        chains = args.chains or (QUICK_CHAINS * (16 if row.gpu_only else 1) if args.quick else row.chains)
        print(f"\n{key}: {row.what}, {chains} chains, {row.dtype}")
        problem = make_problem(row, chains, device)
        contenders = torch_contenders(row, problem, steps, device, tuple(args.steps_per_call))
        if peers:
            contenders.append(jax_contender(row, problem, steps, *peers))
        contenders = warm_up(contenders, device)
        summary = summarise(measure(contenders, steps, repeats, device))
        print(f"  {'contender':<24} {'steps/s median (min-max)':>30} {'x blackjax median (min-max)':>30}")
        with args.out.open("a") as f:
            for name, s in summary.items():
                print(f"  {name:<24} {fmt(s['steps_per_s'], 0):>30} {fmt(s['ratio_to_blackjax'], 2):>30}")
                f.write(json.dumps({"row": key, "contender": name, "chains": chains, "dim": row.dim,
                                    "dtype": row.dtype, "steps": steps, "repeats": repeats,
                                    **{f"steps_per_s_{k}": v for k, v in s["steps_per_s"].items()},
                                    **{f"ratio_to_blackjax_{k}": (v[k] if (v := s["ratio_to_blackjax"]) else None)
                                       for k in ("median", "min", "max")},
                                    "device": device_name(device), "cpu": cpu_model(), "pinned_core": core,
                                    "jax_device": peers[2].device_kind if peers else None,
                                    **versions, "commit": commit, "date": date}) + "\n")
    print(f"\nwrote {args.out}; run time {time.perf_counter() - t_run:.0f} s")


if __name__ == "__main__":
    main()
