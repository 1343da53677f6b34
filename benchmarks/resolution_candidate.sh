#!/usr/bin/env bash
# Train the lower-resolution candidate (--resolution) of a finished search, in a copy of its run folder (the
# original is left as it is; neither the steps nor the recovery are repeated), so that the pruned sub-model
# and the start model at a lower input size are compared as the search compares them.
# Usage: bash benchmarks/resolution_candidate.sh SOURCE_RUN DEST_RUN RESOLUTION [OPTIONS...]
#        RESOLUTION: a size in px, or auto (priced by the run's own target). Resumable: a DEST_RUN whose
#        summary holds the candidate is kept; one killed while training it trains it again.
# e.g.   R=benchmarks/results/recovery-caltech101
#        bash benchmarks/resolution_candidate.sh $R/caltech-iterative40-from-ftfull24-recover24-s0 \
#             $R/caltech-iterative40-resolution96-s0 96
set -eu
cd "$(dirname "$0")/.."
src=$1 dest=$2 size=$3
shift 3
if [ -f "$dest/summary.json" ] && python -c "import json,sys; sys.exit('resolution' not in json.load(open('$dest/summary.json')))"; then
  exit 0  # done
fi
if [ ! -f "$dest/state.json" ]; then
  rm -rf "$dest"
  cp -r "$src" "$dest"
  rm -f "$dest"/latency-*.json  # not measured yet
fi
${TT:-transtailor} search --resume "$dest" --resolution "$size" "$@"
