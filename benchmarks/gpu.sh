#!/usr/bin/env bash
# The GPU table of docs/performance.md: meta-training throughput of each learner (vmap against the per-task
# loop and the autograd reference), peak memory of second-order MAML up to meta-batch 32, and the adaptation
# latency of omniglot-cvae-metasgd, all with `--device cuda` (DEVICE=cpu: the same on the CPU). One JSON line
# per measurement, in OUT_DIR/*.jsonl.
#
#   bash benchmarks/gpu.sh DATA_DIR OUT_DIR      # DATA_DIR: the Omniglot folder (METAGAN_DATA_DIR); ~6 minutes
#
# Each part has its own time limit, so a slow part costs only itself; what finished is in OUT_DIR.
set -u
data=${1:?usage: bash benchmarks/gpu.sh DATA_DIR OUT_DIR}
out=${2:?usage: bash benchmarks/gpu.sh DATA_DIR OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
dev=${DEVICE:-cuda}  # DEVICE=cpu tries the script here
run() {  # name, seconds, command...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" >"$out/$name.jsonl" 2>"$out/$name.err"
    echo "== $name: exit $?, $((SECONDS - t0)) s"
    cat "$out/$name.jsonl"; tail -n 5 "$out/$name.err"
}
{
    date -u +%Y-%m-%dT%H:%M:%SZ
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    $py -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
    nproc
} >"$out/env.txt" 2>&1
cat "$out/env.txt"
run throughput 280 $py -m metagan perf throughput --device "$dev" --reps 2 --meta-batch 8 32 \
    --preset omniglot-metasgd omniglot-fomaml omniglot-reptile omniglot-maml
run memory 110 $py -m metagan perf memory --device "$dev" --quick --preset omniglot-maml
run adapt 60 $py -m metagan perf adapt --device "$dev" --reps 20 --data-dir "$data" \
    --checkpoint pretrained:omniglot-cvae-metasgd --routes bf16 channels-last
run adapt-compiled 80 $py -m metagan perf adapt --device "$dev" --reps 20 --data-dir "$data" \
    --checkpoint pretrained:omniglot-cvae-metasgd --routes compiled
