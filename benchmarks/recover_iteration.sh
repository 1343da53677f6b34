#!/usr/bin/env bash
# Recover another iteration of a finished search, in a copy of its run folder (the original is left as it
# is; the steps are not repeated): e.g. the 30 % sub-model of a search that returned its 40 % one, for the
# speed-up the goals name 1.3x.
# Usage: bash benchmarks/recover_iteration.sh SOURCE_RUN DEST_RUN ITERATION EPOCHS [RECOVERY OPTIONS...]
#        (resumable: a finished DEST_RUN is kept; one killed while recovering recovers again). RECOVERY
#        OPTIONS train the recovery only, e.g. --distill start, --label-smoothing 0.1 or --lr-backbone 0.001
# e.g.   bash benchmarks/recover_iteration.sh benchmarks/results/recovery-screen-cub100/search-40-recover8-s0 \
#             benchmarks/results/start-screen-cub100/search-30-recover24-s0 3 24
set -eu
cd "$(dirname "$0")/.."
src=$1 dest=$2 it=$3 epochs=$4
shift 4
if [ -f "$dest/recovered/metrics.json" ] && [ -f "$dest/summary.json" ] && \
   python -c "import json,sys; s=json.load(open('$dest/summary.json')); sys.exit(s['best_iteration'] != $it)"; then
  exit 0  # done
fi
if [ ! -f "$dest/state.json" ]; then
  rm -rf "$dest"
  cp -r "$src" "$dest"
  rm -f "$dest/summary.json" "$dest"/latency-*.json  # not finished until this recovery is; not measured yet
fi
${TT:-transtailor} search --resume "$dest" --return-iteration "$it" --recover-epochs "$epochs" "$@"
