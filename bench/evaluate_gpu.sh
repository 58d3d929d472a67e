#!/usr/bin/env bash
# The research protocol on a GPU (issue 24): `small` (about 7M parameters, 20M tokens per model), 3 seeds, the raw,
# curated and tagged variants, on a lake given as $1 (a demo or crawl_dev lake built beforehand). Writes the
# table, the verdict and the report under $2 (default bench/results/gpu). Not run yet: no GPU was lent when it
# was written; the CUDA path (udfs.encoder.pick_device, deterministic cuBLAS workspace in lm.train) is untested.
set -euo pipefail
lake=${1:?usage: bench/evaluate_gpu.sh LAKE [OUT_DIR]}
out=${2:-bench/results/gpu}
mkdir -p "$out"
python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: this script is for a GPU")'
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python bench/evaluate_protocol.py --lake "$lake" --size small --seeds 3 --variants raw,curated,tagged \
  --set evaluate.device=cuda --set evaluate.prompts=400 --out "$out/evaluate_protocol.json" | tee "$out/summary.md"
