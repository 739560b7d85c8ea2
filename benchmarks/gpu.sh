#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md and docs/leaderboard.md, measured in one go on a CUDA GPU.
#
#   bash benchmarks/gpu.sh OUT [DATA_DIR] [SECONDS] [STEP...]
#
# DATA_DIR holds Fashion-MNIST's four .gz files (searched in the usual places otherwise).
# SECONDS (default 900) is the time the whole script may take: each step gets what is left,
# up to its own limit, so a slow step cuts the later ones short rather than the script.
# STEP... names the steps to run, in that order (default: all of them, most important first;
# the list is below). On one H200 (2026-11-30) the whole list needs about 20 minutes. Where a
# command may run 10 minutes at most, `bash benchmarks/gpu.sh OUT DATA 540` runs the steps in
# order until the time is spent: first what the speed targets still lack (where the larger nets'
# device time goes, torch.compile inside the recorded step), then the tests, a record run and
# the bench. The NiN seed sweep (nin-seeds) is done and runs only when named.
# cnnzoo runs from this checkout (PYTHONPATH=src), so the machine needs only torch, numpy,
# safetensors, matplotlib, tqdm, Pillow (and pytest for the tests step). Python's compiled
# bytecode is kept, in $PYCACHE (default /tmp/cnnzoo-pycache): where torch sits in a read-only
# folder without it (or PYTHONDONTWRITEBYTECODE is set), Python compiles torch's sources anew in
# every process, 5.5 s of the record's 26 s on the H200, which an installed torch never pays. Everything lands in OUT: a log per step,
# the bench's JSON lines, the boards' RESULTS.md / results.json / leaderboard.png, the runs'
# metrics, and summary.txt with each step's command, exit status, seconds and last lines.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT [DATA_DIR] [SECONDS] [STEP...]}
data=()
[ -n "${2:-}" ] && data=(--data-dir "$2")
budget=${3:-900}
shift $(($# < 3 ? $# : 3))
all=(smoke kernels compile-graphs tests record-flip8 bench record-eval record d2l best modern
     step-modes record-profile record-flip9 best-wide)
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=("${all[@]}")
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    PYTHONPYCACHEPREFIX=${PYCACHE:-/tmp/cnnzoo-pycache}
unset PYTHONDONTWRITEBYTECODE
cz=(python3 -m cnnzoo)
fast=(--amp --channels-last --cuda-graphs --device cuda)
nine=(lenet5_d2l alexnet_d2l vgg11_d2l nin_d2l googlenet_d2l lenet5_bn_scratch_d2l lenet5_bn_d2l
      resnet18_d2l densenet_d2l)
# the record: Fashion-MNIST test accuracy >= 94 % in under 5 s of wall time from the files
record=(train resnet9_fmnist --recipe best --batch-size 512 --lr 0.4 --set erasing=0
        "${fast[@]}" "${data[@]}")
summary=$out/summary.txt

step() {  # step NAME LIMIT COMMAND...: run with what is left of the budget (at most LIMIT s)
    local name=$1 limit=$2
    shift 2
    local left=$((budget - SECONDS))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 10 ]; then
        echo "== $name: skipped, the time is spent" | tee -a "$summary"
        return 1
    fi
    echo "== $name (at most $limit s): $*" | tee -a "$summary"
    local start=$EPOCHREALTIME
    timeout --signal=INT --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    local ms=$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))
    printf '   exit %d, %d.%03d s of wall time\n' $rc $((ms / 1000)) $((ms % 1000)) \
        | tee -a "$summary"
    tail -n 4 "$out/$name.log" | sed 's/^/   /' | tee -a "$summary"
    return $rc
}

run_step() {
    case $1 in
    smoke)  # a few seconds that would show a broken fast path before the long steps
        step smoke 90 "${cz[@]}" train resnet9_fmnist --recipe best --epochs 1 --subset 4096 \
            "${fast[@]}" --out "$out/runs/smoke" "${data[@]}" ;;
    tests)  # the tests that need CUDA (CUDA graphs against eager steps, the summary on CUDA)
        step tests 120 python3 -m pytest -q -x tests/test_step.py tests/test_summary.py \
            tests/test_fastpath.py ;;
    record)  # the whole process timed; the last line says where train()'s time went
        step record 60 "${cz[@]}" "${record[@]}" --epochs 10 --out "$out/runs/record" ;;
    record-profile)  # the same under cProfile: what the time outside the steps is
        step record-profile 60 python3 benchmarks/profile_command.py --top 60 "${record[@]}" \
            --epochs 10 --out "$out/runs/record-profile" ;;
    record-flip[1-9] | record-flip[1-9][0-9])  # N epochs, evaluated with flip test-time augmentation
        step "$1" 60 "${cz[@]}" "${record[@]}" --epochs "${1#record-flip}" \
            --set eval_flip=true --out "$out/runs/$1" ;;
    record-eval)  # flip-8 with the whole test set as one evaluation batch (20 launches fewer)
        step record-eval 60 "${cz[@]}" "${record[@]}" --epochs 8 --set eval_flip=true \
            --set eval_batch_size=10000 --out "$out/runs/record-eval" ;;
    step-modes)  # CUDA graphs with and without cuDNN's algorithm timing, model by model
        step step-modes 150 python3 benchmarks/step_modes.py "${nine[@]}" resnet9_fmnist \
            --modes graphs,graphs+cudnn --results "$out/step-modes.jsonl" ;;
    kernels)  # where the larger nets' steps spend their device time, operator by operator
        step kernels 120 python3 benchmarks/kernels.py alexnet_d2l vgg11_d2l nin_d2l \
            googlenet_d2l resnet18_d2l densenet_d2l --top 15 --results "$out/kernels.jsonl" ;;
    compile-graphs)  # torch.compile inside the recorded step
        step compile-graphs 200 python3 benchmarks/step_modes.py lenet5_d2l \
            lenet5_bn_scratch_d2l resnet9_fmnist resnet18_d2l --modes graphs,compile+graphs \
            --results "$out/compile-graphs.jsonl" ;;
    bench)  # every d2l model against the textbook's loop on the same GPU (target: 10x),
            # ours with the flags --fast measures fastest for each model
        step bench 180 "${cz[@]}" bench "${nine[@]}" --data fashion-mnist --baseline \
            --steps 100 --fast --device cuda --results "$out/bench.jsonl" "${data[@]}" ;;
    d2l)  # the book's recipe (ours within the book's spread; the nine x 10 epochs < 60 s),
          # each model with the flags --fast measures fastest for it
        step d2l 300 "${cz[@]}" leaderboard --recipe d2l --fast --device cuda \
            --out "$out/board-d2l" "${data[@]}" ;;
    densenet)  # the d2l board's last model alone
        step densenet 90 "${cz[@]}" leaderboard --recipe d2l --models densenet_d2l \
            "${fast[@]}" --out "$out/board-densenet" "${data[@]}" ;;
    best)  # the best entry (target: >= 95.0 %)
        step best 120 "${cz[@]}" leaderboard --recipe best "${fast[@]}" \
            --out "$out/board-best" "${data[@]}" ;;
    modern)  # cnnzoo's recipe (target: each beats its d2l test accuracy)
        step modern 300 "${cz[@]}" leaderboard --recipe modern "${fast[@]}" \
            --out "$out/board-modern" "${data[@]}" ;;
    modern-big)  # the same for the five models past AlexNet
        step modern-big 300 "${cz[@]}" leaderboard --recipe modern \
            --models vgg11_d2l,nin_d2l,googlenet_d2l,resnet18_d2l,densenet_d2l "${fast[@]}" \
            --out "$out/board-modern-big" "${data[@]}" ;;
    nin-seeds)  # NiN with the book's recipe over three seeds (seed 0 ended at 29 % and 43 %)
        step nin-seeds 200 "${cz[@]}" leaderboard --recipe d2l --models nin_d2l --seeds 3 \
            "${fast[@]}" --out "$out/board-nin" "${data[@]}" ;;
    best-wide)  # the best entry at double width
        step best-wide 120 "${cz[@]}" train resnet9_fmnist --recipe best --model-arg width=64 \
            "${fast[@]}" --out "$out/runs/best-wide" "${data[@]}" ;;
    *)
        echo "gpu.sh: unknown step $1 (steps: ${all[*]} densenet modern-big nin-seeds" \
            "record-flipN)" >&2
        return 64 ;;
    esac
}

python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available()
                                 and torch.cuda.get_device_name())' \
    2>&1 | tee "$summary"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    >>"$summary" 2>&1
date -u +%FT%TZ >>"$summary"

for name in "${steps[@]}"; do
    run_step "$name"
    rc=$?
    if [ $rc -ne 0 ] && [ "${name%%-*}" = smoke ]; then
        echo "the smoke step failed: nothing more is run" | tee -a "$summary"
        break
    fi
    [ $rc -eq 64 ] && break
done
echo "done in $SECONDS s: $summary" | tee -a "$summary"
