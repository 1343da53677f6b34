#!/usr/bin/env bash
# A one-seed screen on cub100 (efficientnet_lite0, dev CPU, one thread per job) at equal measured speed:
#   lowres   FT-Full at 96 and 80 px, 12 epochs: the user's simplest alternative to pruning
#   oneshot  the FT-Full model pruned to a measured 1.5x on ONNX Runtime in one latency-priced step, then
#            12 epochs with FT-Full as the teacher
#   caltech  caltech101: the default search (FT start, 10 % MAC steps of 4 epochs) to 40 % fewer MACs, then
#            8 recovery epochs; SEED=0 or 1 (default 0)
#   lite1    efficientnet_lite1 at 112 px: FT-Full 12 epochs, then pruned in one latency-priced step to
#            lite0's measured time on ONNX Runtime (1.32x: 42.4 / 32.2 ms at batch 32 in
#            builtin_models/imagenet.md) and trained 12 epochs with its FT-Full as the teacher
# Usage: bash benchmarks/speed_screen.sh JOB   (resumable: finished runs are skipped)
set -u
cd "$(dirname "$0")/.."
out=benchmarks/results/start-screen-cub100
mkdir -p "$out"
source benchmarks/_run.sh
ftfull12=benchmarks/results/recovery-screen-cub100/ft-full-12ep-s0
common="--data ../shared/data/cub100 --model efficientnet_lite0 --cache --threads 1 --workers 0 --seed 0"
case "$1" in
  lowres)
    for px in 96 80; do
      run ft-full-12ep-${px}px-s0 finetune --mode full $common --no-latency --image-size $px --epochs 12
    done ;;
  oneshot)
    run oneshot-ort1.5-teacher-s0 search $common --image-size 112 --from-ft $ftfull12 --start ft-full \
        --distill start --latency-target onnxruntime --cost latency --latency-step 0.34 --target-speedup 1.5 \
        --finetune-epochs 12 --stop-rule none ;;
  caltech)
    seed=${SEED:-0}
    out=benchmarks/results/recovery-caltech101
    mkdir -p "$out"
    run caltech-search-40-recover8-s$seed search ${common/cub100/caltech101} --seed $seed --no-latency \
        --image-size 112 --epochs 4 --target-flops-reduction 0.4 --stop-rule none --recover-epochs 8 ;;
  lite1)
    run lite1-oneshot-ort1.32-teacher-s0 search ${common/efficientnet_lite0/efficientnet_lite1} --image-size 112 \
        --start ft-full --ft-epochs 12 --distill start --latency-target onnxruntime --cost latency --steps 1 \
        --target-speedup 1.32 --finetune-epochs 12 --stop-rule none ;;
esac
