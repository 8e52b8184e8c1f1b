#!/usr/bin/env bash
# The GPU checks of the compiled step path, as one command for a machine with a CUDA card and torch
# on it (scorelab itself is read from this checkout, not installed): the CUDA-only tests of
# tests/scorelab/test_compiled.py (eager and compiled chains agree; CUDA-graph outputs kept past a
# step stay intact) and tests/scorelab/test_rng.py (keyed numbers on the card are the CPU's; a keyed
# run under CUDA graphs is the eager one), then benchmarks/peers.py on the GPU, 1e6-chain row and
# keyed column included, with the compiled loop taking 1 and 16 steps a call beside its default 8
# (what several a call gain on the card), then the kernels a step of the 1e6-chain row at 1, 8 and
# 16 steps a call (benchmarks/profile_step.py: whether several steps fuse into fewer passes over the
# chains), then the same row's update with its noise made inside the compiled graph from keyed
# tickets against drawn first (benchmarks/fused_noise.py). No tracking, so no MLflow is needed; pluggy, pyyaml, scipy, numpy and pytest are (checked first).
# BlackJAX's column needs jax for the card and blackjax; a blackjax wheel in .whl/ (`pip download
# --no-deps -d .whl blackjax==1.7.1`) is installed first when there is one.
#
#     bash benchmarks/gpu_check.sh [RESULTS_DIR]     # default: $OUT, else benchmarks/results
#
# Its run time on a card is not measured yet: no card was lent when it was written.
set -uo pipefail
out=${1:-${OUT:-benchmarks/results}}
mkdir -p "$out"
export PYTHONPATH="platform:plugins:.:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
if compgen -G ".whl/blackjax-*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python3 -c "import pluggy, yaml, scipy, numpy, pytest, torch" || { echo "missing Python packages (above): carry them as wheels"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/scorelab/test_compiled.py tests/scorelab/test_rng.py -k cuda 2>&1 | tee "$out/gpu_tests.txt"
tests=$?
python3 benchmarks/peers.py --device cuda --repeats 3 --steps-per-call 1 16 --out "$out/peers_gpu.jsonl" 2>&1 | tee "$out/peers_gpu.txt"
peers=$?
python3 benchmarks/profile_step.py --device cuda --row gaussian-1e6 --steps 49 --steps-per-call 1 8 16 2>&1 | tee "$out/profile_gpu.txt"
profiled=$?
python3 benchmarks/fused_noise.py --device cuda --chains 1000000 --steps-per-call 1 8 16 2>&1 | tee "$out/fused_noise_gpu.txt"
exit $(( tests || peers || profiled || $? ))
