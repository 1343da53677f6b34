#!/usr/bin/env bash
# Prune a finished search on to a deeper FLOPs target, in a copy of its run folder (the original is left as
# it is; its steps are kept, not repeated), then recover the new sub-model as the run's --recover-epochs say:
# e.g. a search to 40 % fewer MACs taken on to 60 %, for the speed-up eager PyTorch needs for 1.5x.
# Usage: bash benchmarks/deepen_run.sh SOURCE_RUN DEST_RUN TARGET   (resumable: a finished DEST_RUN is kept,
#        one killed on the way goes on from its last step)
# e.g.   bash benchmarks/deepen_run.sh benchmarks/results/start-screen-cub100/search-40-recover24-s2 \
#             benchmarks/results/start-screen-cub100/search-60-recover24-s2 0.6
set -eu
cd "$(dirname "$0")/.."
src=$1 dest=$2 target=$3
if [ -f "$dest/summary.json" ]; then exit 0; fi  # done (a copy has no summary until its new end)
if [ ! -f "$dest/state.json" ]; then
  rm -rf "$dest"
  cp -r "$src" "$dest"
  rm -f "$dest/summary.json" "$dest"/latency-*.json  # not finished until it is deeper; not measured yet
fi
${TT:-transtailor} search --resume "$dest" --target-flops-reduction "$target"
