#!/usr/bin/env bash
# Search trajectories for judging stop rules and best-epoch choices offline: one seed's runs.
#
#   benchmarks/stop_rules.sh DATA OUT SEED
#
# Each search runs with the stop switched off (--tau inf) for MAX_ITER steps of 10 % of the original
# FLOPs, once per epoch choice (EPOCH_CHOICES, default "top1 last"); every iteration keeps its
# validation predictions (predictions.json), so benchmarks/stop_rules.py can replay any stop rule on
# them: a run stopped by a rule is the same run cut short. TAYLOR="top1 last" adds plain Taylor pruning
# (the search without alpha) over the same steps with those epoch choices; FTFULL="4 12" adds FT-Full
# with those epochs (epoch choice FTFULL_CHOICE, default top1). Every run is skipped when done and
# resumed when cut off. EXTRA adds options to every run (e.g. --device cuda).
set -euo pipefail
data=$1 out=$2 seed=$3
max_iter=${MAX_ITER:-5}
common=(--data "$data" --model efficientnet_lite0 --image-size 112 --epochs 4 --cache --no-latency
        --seed "$seed" ${EXTRA:-})

. "$(dirname "$0")/_run.sh"

for choice in ${EPOCH_CHOICES-top1 last}; do
  run "tt-$choice-s$seed" search "${common[@]}" --stop-rule none --max-iterations "$max_iter" --epoch-choice "$choice"
done
reduction=$(python3 -c "print(round(0.1 * $max_iter, 2))")
for choice in ${TAYLOR:-}; do
  run "taylor-$choice-s$seed" prune --method taylor "${common[@]}" --flops-step 0.1 --flops-reduction "$reduction" \
    --epoch-choice "$choice"
done
ftc=${FTFULL_CHOICE:-top1}
for e in ${FTFULL:-}; do
  run "ft-full-${e}ep-$ftc-s$seed" finetune --mode full "${common[@]}" --epochs "$e" --epoch-choice "$ftc"
done
