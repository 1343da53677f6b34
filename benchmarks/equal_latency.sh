#!/usr/bin/env bash
# Accuracy at equal measured latency: one seed's runs, in order of importance (each resumable).
#
#   benchmarks/equal_latency.sh DATA OUT SEED
#
# 1. TransTailor and Taylor with the latency cost up to 1.5x measured speed-up (CPU, batch 32) in steps
#    of 10 % of the original latency; every step's sub-model is kept, so 1.3x is read from the same runs;
# 2. TransTailor with the MAC cost in 10 % steps up to 50 % fewer MACs (MAC_BUDGETS), every step's measured
#    speed-up recorded, so each latency-cost sub-model has a MAC-cost one of nearly the same latency;
# 3. FT-Full with 4 epochs, then with as many full-network epochs as the searches had (8, 12, 16).
# All start from the same FT run. TT names the command (default: transtailor); EXTRA adds options to
# every run (e.g. --device cuda), LAT_EXTRA to the latency-cost comparison alone (e.g. --latency-tries 1);
# BUDGETS, LAT_METHODS and MAC_METHODS override the budgets and methods.
set -euo pipefail
data=$1 out=$2 seed=$3
tt=${TT:-transtailor}
common=(--data "$data" --model efficientnet_lite0 --image-size 112 --epochs 4 --cache --threads 2
        --latency-target cpu --latency-batch 32 --seeds "$seed" --out "$out" ${EXTRA:-})
$tt compare "${common[@]}" --methods "${LAT_METHODS:-transtailor,taylor}" --cost latency --budgets "${BUDGETS:-1.5}" \
  ${LAT_EXTRA:-}
cp "$out/compare.md" "$out/compare-latency-s$seed.md"
$tt compare "${common[@]}" --methods "${MAC_METHODS:-ft-full,transtailor}" --budgets "${MAC_BUDGETS:-0.1,0.2,0.3,0.4,0.5}"
cp "$out/compare.md" "$out/compare-macs-s$seed.md"
for e in 8 12 16; do
  if [ ! -f "$out/ft-full-${e}ep-s$seed/summary.json" ]; then
    rm -rf "$out/ft-full-${e}ep-s$seed"
    $tt finetune --mode full --data "$data" --model efficientnet_lite0 --image-size 112 --epochs "$e" --cache \
      --threads 2 --no-latency --seed "$seed" --out "$out/ft-full-${e}ep-s$seed" ${EXTRA:-}
  fi
done
