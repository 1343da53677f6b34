#!/usr/bin/env bash
# What the importance costs and what it prunes: the paper's beta against Taylor (beta at alpha = 1), one seed.
#
#   benchmarks/importance_cost.sh DATA OUT SEED
#
# From one FT model: one pruning step of 10 % of the FLOPs with each importance and no fine-tuning
# afterwards (--finetune-epochs 0), so each run's iteration 1 gives the pruned model's validation
# top-1 before any fine-tuning, its removed channels (pruning.json) and the seconds of the importance
# (seconds_alpha + seconds_beta); a one-epoch FT-Full run gives the seconds of a fine-tuning epoch.
# Then: python benchmarks/importance_cost.py OUT. EXTRA adds options to every run.
set -euo pipefail
data=$1 out=$2 seed=$3
common=(--data "$data" --model efficientnet_lite0 --image-size 112 --cache --no-latency --seed "$seed" ${EXTRA:-})
. "$(dirname "$0")/_run.sh"
run "ft-s$seed" finetune --mode head --epochs 4 "${common[@]}"
for imp in beta taylor; do
  run "$imp-s$seed" search "${common[@]}" --from-ft "$out/ft-s$seed" --importance "$imp" --max-iterations 1 \
    --finetune-epochs 0 --stop-rule none
done
run "epoch-s$seed" finetune --mode full --epochs 1 "${common[@]}"
