#!/usr/bin/env bash
# A one-seed screen on cub100 (efficientnet_lite0, 112 px, dev CPU, one thread per job) for issue-30 choices:
#   ftfull   FT-Full at 8, 16 and 24 epochs (12 is in recovery-screen-cub100): how many epochs converge
#   lowres   FT-Full at 96 and 80 px, 12 epochs: the lower-resolution alternative at equal speed
#   oneshot  prune the FT-Full model to 40 % fewer MACs in one step, then 12 epochs with and without
#            the FT-Full model as teacher
# Usage: bash benchmarks/start_screen.sh JOB   (resumable: finished runs are skipped)
set -u
cd "$(dirname "$0")/.."
out=benchmarks/results/start-screen-cub100
mkdir -p "$out"
source benchmarks/_run.sh
ftfull12=benchmarks/results/recovery-screen-cub100/ft-full-12ep-s0
common="--data ../shared/data/cub100 --model efficientnet_lite0 --cache --threads 1 --workers 0 --no-latency --seed 0"
case "$1" in
  ftfull)
    for e in 24 16 8; do
      run ft-full-${e}ep-s0 finetune --mode full $common --image-size 112 --epochs $e
    done ;;
  lowres)
    for px in 96 80; do
      run ft-full-12ep-${px}px-s0 finetune --mode full $common --image-size $px --epochs 12
    done ;;
  oneshot)
    run oneshot40-teacher-s0 search $common --image-size 112 --from-ft $ftfull12 --distill $ftfull12 \
        --flops-step 0.4 --target-flops-reduction 0.4 --finetune-epochs 12 --stop-rule none
    run oneshot40-s0 search $common --image-size 112 --from-ft $ftfull12 \
        --flops-step 0.4 --target-flops-reduction 0.4 --finetune-epochs 12 --stop-rule none ;;
esac
