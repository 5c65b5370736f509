#!/usr/bin/env bash
# The GPU checks, on one CUDA machine with PyTorch (Ray and MLflow not needed), from the
# repository root:
#   1. `quokka bench train` of a ~1B DLM at seq 2048 with the training loop's parts (FSDP2 bf16
#      policy, per-block torch.compile, fused AdamW, masked-only head);
#   2. the training loop under an NCCL process group (torchrun): 50 steps, a checkpoint and a
#      resume (tests/test_gpu_loop.py), and the attention / bf16 tests;
#   3. the same 1B DLM with the parts added one at a time (eager autocast baseline first);
#   4. DLM and AR at ~125M, ~350M and ~1B, all parts on.
# Each result is one JSON line in $RESULTS; a run that would start after $BUDGET_S seconds is
# skipped, so that whatever ran comes back within the machine's time.
#
#   RESULTS=gpu.jsonl BUDGET_S=480 bash tests/scripts/gpu_checks.sh
set -uo pipefail
RESULTS=${RESULTS:-gpu-checks.jsonl}
BUDGET_S=${BUDGET_S:-480}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SEQ=${SEQ:-2048}
ONE_B=${ONE_B:-1000000000}  # SEQ, ONE_B, SIZES: smaller for a dry run on a CPU

nvidia-smi -L
"$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

bench() {  # bench NAME ARGS...: one `quokka bench train` run, its JSON line tagged with NAME
  local name=$1; shift
  if (( SECONDS > BUDGET_S )); then echo "skipped $name (${SECONDS}s > ${BUDGET_S}s)"; return; fi
  local line
  line=$(timeout 150 "$PYTHON" -m quokka_ray.cli bench train --seq-len $SEQ --json "$@" | tail -1)
  if [[ $line == "{"* ]]; then
    echo "{\"check\": \"$name\", ${line:1}" | tee -a "$RESULTS"
  else
    echo "{\"check\": \"$name\", \"failed\": true}" | tee -a "$RESULTS"
  fi
  echo "[${SECONDS}s] $name done"
}

# 1. The goal: a ~1B DLM, every part on.
base=(--non-embedding-params $ONE_B --batch-sequences 8)
bench 1b-dlm "${base[@]}"

# 2. The loop on NCCL with a checkpoint and a resume; attention backends and bf16 steps.
if (( SECONDS <= BUDGET_S )); then
  timeout 300 "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/test_gpu_loop.py \
    tests/test_attention_gpu.py 2>&1 | tail -25
  echo "{\"check\": \"gpu-tests\", \"rc\": ${PIPESTATUS[0]}}" | tee -a "$RESULTS"
  echo "[${SECONDS}s] gpu tests done"
fi

# 3. The parts one at a time, from eager bf16 autocast over fp32 weights.
bench 1b-dlm-fsdp "${base[@]}" --no-compile --full-head
bench 1b-dlm-masked "${base[@]}" --no-compile
bench 1b-dlm-eager "${base[@]}" --no-fsdp --no-compile --no-fused-adamw --full-head
bench 1b-dlm-fused "${base[@]}" --no-fsdp --no-compile --full-head

# 4. Kinds, sizes, a larger batch, the cuDNN attention kernel.
bench 1b-ar "${base[@]}" --kind ar
for n in ${SIZES:-350000000 125000000}; do
  bench "$((n / 1000000))m-dlm" --non-embedding-params $n --batch-sequences 8
  bench "$((n / 1000000))m-ar" --non-embedding-params $n --batch-sequences 8 --kind ar
done
bench 1b-dlm-b16 --non-embedding-params $ONE_B --batch-sequences 16
bench 1b-dlm-cudnn "${base[@]}" --attention cudnn
echo "[${SECONDS}s] all done"
