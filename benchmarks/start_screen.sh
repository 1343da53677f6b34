#!/usr/bin/env bash
# One-seed screens of how a sub-model is made, against the user's alternatives (efficientnet_lite0, dev CPU,
# one thread per job; run two jobs at a time on a 2-core machine). Results go to
# benchmarks/results/start-screen-cub100/ (cub100) and benchmarks/results/recovery-caltech101/.
#   ftfull     cub100 FT-Full at 112 px for 8, 16 and 24 epochs (12: recovery-screen-cub100): which converges
#   lowres     cub100 FT-Full at 96 px (about 1.5x faster than 112 px on ONNX Runtime), 24 epochs
#   oneshot    cub100: the FT-Full 12-epoch model pruned to 40 % fewer MACs in one step, then 12 epochs, with
#              and without that FT-Full model as the teacher
#   iterfull   cub100: the default search's 10 % steps of 4 epochs to 40 % fewer MACs, then 8 recovery
#              epochs, but starting from the FT-Full 12-epoch model (--start ft-full) instead of FT
#   iterfull24 cub100, seed SEED (default 0): FT-Full 24 epochs, then the default search's 10 % steps of 4
#              epochs to 40 % fewer MACs starting from it (--start ft-full), recovered for 24 epochs
#   iterteacher24 cub100, seed SEED: iterfull24 with its FT-Full start as the teacher of the recovery alone
#              (--distill start --distill-in recovery, weight 0.5, T = 4: the default with a target); seed 0's
#              run of that name is iterfull24's run recovered again so (benchmarks/recover_iteration.sh)
#   recover24  cub100: the recovery screen's search (40 % fewer MACs, 4 epochs a step) recovered for 24
#              epochs instead of 8 (a copy of that run, resumed with --recover-epochs 24: the steps are
#              not repeated)
#   caltech    caltech101: the default search to 40 % fewer MACs, then --recover-epochs 8 (SEED, default 0)
#   caltech24  caltech101: that search (SEED) recovered for 24 epochs instead of 8 (a copy, resumed)
#   caltechseed caltech101, seed SEED: the default search to 40 % fewer MACs recovered for 24 epochs
#   caltechftfull caltech101, seed SEED: FT-Full at 112 px for EPOCHS (default "24 16") epochs: which converges
#   caltechfull caltech101, seed SEED: FT-Full 12 epochs, then the default search's 10 % steps of 4 epochs to
#              40 % fewer MACs starting from it (--start ft-full), recovered for 24 epochs
#   caltechfull24 caltech101, seed SEED: FT-Full 24 epochs, then the default search to 40 % fewer MACs from it
#              (--start ft-full; the default recipe with a target), recovered for RECOVER (default 24) epochs
#   caltechteacher caltech101, seed SEED: caltechfull24's search with its FT-Full start as the teacher of the
#              recovery (--distill start, weight 0.5, T = 4, --distill-in recovery: the default recipe with a
#              target; seed 0's run of that name is caltechfull24's run recovered again so)
#   caltechgoals caltech101, seed SEED: what the goals compare at 1.3x and 1.5x for one seed: caltechteacher,
#              its 30 % sub-model recovered the same way (benchmarks/recover_iteration.sh), its 96 px
#              candidate as the search trains it (12 epochs, benchmarks/resolution_candidate.sh) and FT-Full
#              at 96 px (caltechlowres); about 8 h at one thread, resumable at each run
#   caltechlowres caltech101, seed SEED: FT-Full at 96 px, 24 epochs (the lower-resolution alternative)
#   seed       cub100, seed SEED: the candidate pair, FT-Full 24 epochs and the default search to 40 %
#              fewer MACs recovered for 24 epochs
#   ftfullseed cub100, seed SEED: FT-Full 24 epochs alone
#   resolution cub100, seed SEED: the lower-resolution candidate of iterfull24's FT-Full start (--resolution RES,
#              default 96: the size whose measured latency matched the 40 % sub-model's), trained as the search
#              trains it (24 epochs, warm-up); the run's one step is left untrained (--finetune-epochs 0,
#              --recover-epochs 0: the candidate then trains --ft-epochs, 24) and has no row of its own
#   family     cub100, seed SEED: efficientnet_lite1 and lite2 searched to 30 and 40 % fewer MACs and recovered
#              24 epochs: the larger models of the family pruned to about lite0's latency
# Usage: bash benchmarks/start_screen.sh JOB   (resumable: finished runs are skipped; THREADS, default 1,
#        sets --threads, WORKERS, default 0, --workers; DATA_ROOT, default ../shared/data, holds cub100 and
#        caltech101, e.g. a copy re-encoded by benchmarks/reencode.py for a GPU machine; CALTECH_OUT, default
#        benchmarks/results/recovery-caltech101, where the caltech101 jobs write: benchmarks/gpu_grid.sh)
# Then:  python benchmarks/start_screen.py     (re-measures every returned model and writes the table)
set -u
cd "$(dirname "$0")/.."
out=benchmarks/results/start-screen-cub100
mkdir -p "$out"
case "${1:-}" in caltech*) out=${CALTECH_OUT:-benchmarks/results/recovery-caltech101}; mkdir -p "$out" ;; esac  # caltech101's
source benchmarks/_run.sh
screen=benchmarks/results/recovery-screen-cub100
ftfull12=$screen/ft-full-12ep-s0
common="--data ${DATA_ROOT:-../shared/data}/cub100 --model efficientnet_lite0 --cache --threads ${THREADS:-1} --workers ${WORKERS:-0} --no-latency --seed 0"
ft_full_24() {  # cub100 FT-Full 24 epochs at 112 px, seed $1: the reference, and the FT-Full start
  run ft-full-24ep-s$1 finetune --mode full ${common/--seed 0/--seed $1} --image-size 112 --epochs 24
}
caltech_teacher() {  # caltech101, seed $1: FT-Full 24 epochs, then the default recipe's search from it
  run caltech-ft-full-24ep-s$1 finetune --mode full ${common/cub100/caltech101} --seed $1 --image-size 112 \
      --epochs 24
  run caltech-iterative40-from-ftfull24-teacher-recover${RECOVER:-24}-s$1 search ${common/cub100/caltech101} \
      --seed $1 --image-size 112 --from-ft $out/caltech-ft-full-24ep-s$1 --start ft-full --distill start \
      --epochs 4 --target-flops-reduction 0.4 --stop-rule none --recover-epochs ${RECOVER:-24}
}
caltech_lowres() {  # caltech101, seed $1: FT-Full at 96 px, 24 epochs
  run caltech-ft-full-24ep-96px-s$1 finetune --mode full ${common/cub100/caltech101} --seed $1 \
      --image-size 96 --epochs 24
}
case "$1" in
  ftfull)
    for e in 24 16 8; do
      run ft-full-${e}ep-s0 finetune --mode full $common --image-size 112 --epochs $e
    done ;;
  lowres)
    run ft-full-24ep-96px-s0 finetune --mode full $common --image-size 96 --epochs 24 ;;
  oneshot)
    run oneshot40-teacher-s0 search $common --image-size 112 --from-ft $ftfull12 --distill $ftfull12 \
        --flops-step 0.4 --target-flops-reduction 0.4 --finetune-epochs 12 --stop-rule none
    run oneshot40-s0 search $common --image-size 112 --from-ft $ftfull12 \
        --flops-step 0.4 --target-flops-reduction 0.4 --finetune-epochs 12 --stop-rule none ;;
  iterfull)
    run iterative40-from-ftfull-recover8-s0 search $common --image-size 112 --from-ft $ftfull12 --start ft-full \
        --epochs 4 --target-flops-reduction 0.4 --stop-rule none --recover-epochs 8 ;;
  iterfull24)
    seed=${SEED:-0}
    ft_full_24 $seed
    run iterative40-from-ftfull24-recover24-s$seed search ${common/--seed 0/--seed $seed} --image-size 112 \
        --from-ft $out/ft-full-24ep-s$seed --start ft-full --epochs 4 --target-flops-reduction 0.4 --stop-rule none \
        --recover-epochs 24 ;;
  iterteacher24)
    seed=${SEED:-0}
    ft_full_24 $seed
    run iterative40-from-ftfull24-teacher-recover24-s$seed search ${common/--seed 0/--seed $seed} --image-size 112 \
        --from-ft $out/ft-full-24ep-s$seed --start ft-full --epochs 4 --target-flops-reduction 0.4 --stop-rule none \
        --recover-epochs 24 --distill start --distill-in recovery ;;
  recover24)
    r24=$out/search-40-recover24-s0
    if [ -f "$r24/recovered_1/model.pt" ] && [ -f "$r24/recovered/model.pt" ]; then exit 0; fi  # done
    if [ ! -f "$r24/recovered_1/model.pt" ]; then
      rm -rf "$r24"
      cp -r "$screen/search-40-recover8-s0" "$r24"
    fi
    ${TT:-transtailor} search --resume "$r24" --recover-epochs 24 ;;
  seed|ftfullseed)
    seed=${SEED:?set SEED}
    ft_full_24 $seed
    if [ "$1" = seed ]; then
      run search-40-recover24-s$seed search ${common/--seed 0/--seed $seed} --image-size 112 \
          --epochs 4 --target-flops-reduction 0.4 --stop-rule none --recover-epochs 24
    fi ;;
  family)
    # the smaller model of the family as the alternative (cub100, seed SEED): lite1 and lite2 pruned to about
    # lite0's measured latency at 112 px (ONNX Runtime, batch 32: lite1 1.32x and lite2 1.53x lite0's time,
    # benchmarks/results/builtin_models), recovered 24 epochs; with --return-iteration, the iteration whose
    # re-measured latency matches lite0's is the one to recover
    seed=${SEED:-0}
    for m in efficientnet_lite1:0.3 efficientnet_lite2:0.4; do
      run ${m%%:*}-search-${m##*:}-recover24-s$seed search ${common/--seed 0/--seed $seed} --model ${m%%:*} \
          --image-size 112 --epochs 4 --target-flops-reduction ${m##*:} --stop-rule none --recover-epochs 24
    done ;;
  caltech24)
    seed=${SEED:-0}
    r8=$out/caltech-search-40-recover8-s$seed
    r24=$out/caltech-search-40-recover24-s$seed
    if [ -f "$r24/recovered_1/model.pt" ] && [ -f "$r24/recovered/model.pt" ]; then exit 0; fi  # done
    if [ ! -f "$r24/recovered_1/model.pt" ]; then
      rm -rf "$r24"
      cp -r "$r8" "$r24"
    fi
    ${TT:-transtailor} search --resume "$r24" --recover-epochs 24 ;;
  caltechseed)
    seed=${SEED:?set SEED}
    run caltech-search-40-recover24-s$seed search ${common/cub100/caltech101} --seed $seed --image-size 112 \
        --epochs 4 --target-flops-reduction 0.4 --stop-rule none --recover-epochs 24 ;;
  caltechftfull)
    seed=${SEED:-0}
    for e in ${EPOCHS:-24 16}; do
      run caltech-ft-full-${e}ep-s$seed finetune --mode full ${common/cub100/caltech101} --seed $seed \
          --image-size 112 --epochs $e
    done ;;
  caltechfull)
    seed=${SEED:-0}
    run caltech-ft-full-12ep-s$seed finetune --mode full ${common/cub100/caltech101} --seed $seed --image-size 112 \
        --epochs 12
    run caltech-iterative40-from-ftfull12-recover24-s$seed search ${common/cub100/caltech101} --seed $seed \
        --image-size 112 --from-ft $out/caltech-ft-full-12ep-s$seed --start ft-full --epochs 4 \
        --target-flops-reduction 0.4 --stop-rule none --recover-epochs 24 ;;
  caltechfull24)
    seed=${SEED:-0}
    run caltech-ft-full-24ep-s$seed finetune --mode full ${common/cub100/caltech101} --seed $seed --image-size 112 \
        --epochs 24
    run caltech-iterative40-from-ftfull24-recover${RECOVER:-24}-s$seed search ${common/cub100/caltech101} --seed $seed \
        --image-size 112 --from-ft $out/caltech-ft-full-24ep-s$seed --start ft-full --epochs 4 \
        --target-flops-reduction 0.4 --stop-rule none --recover-epochs ${RECOVER:-24} ;;
  caltechteacher)
    caltech_teacher ${SEED:-0} ;;
  caltechlowres)
    caltech_lowres ${SEED:-0} ;;
  caltechgoals)
    seed=${SEED:-0}
    caltech_teacher $seed
    src=$out/caltech-iterative40-from-ftfull24-teacher-recover${RECOVER:-24}-s$seed
    [ -f "$src/summary.json" ] || exit 1  # cut off: run the job again
    bash benchmarks/recover_iteration.sh "$src" $out/caltech-iterative30-from-ftfull24-teacher-recover24-s$seed 3 24
    bash benchmarks/resolution_candidate.sh "$src" $out/caltech-iterative40-teacher-resolution96-12ep-s$seed 96 \
        --resolution-epochs 12 --threads ${THREADS:-1}
    caltech_lowres $seed ;;
  resolution)
    seed=${SEED:-0}
    ft_full_24 $seed
    run resolution${RES:-96}-from-ftfull24-s$seed search ${common/--seed 0/--seed $seed} --image-size 112 \
        --from-ft $out/ft-full-24ep-s$seed --start ft-full --target-flops-reduction 0.1 --stop-rule none \
        --finetune-epochs 0 --recover-epochs 0 --resolution ${RES:-96} ;;
  caltech)
    seed=${SEED:-0}
    run caltech-search-40-recover8-s$seed search ${common/cub100/caltech101} --seed $seed --image-size 112 \
        --epochs 4 --target-flops-reduction 0.4 --stop-rule none --recover-epochs 8 ;;
  *)
    echo "usage: [SEED=N] $0 ftfull|lowres|oneshot|iterfull|iterfull24|iterteacher24|recover24|caltech|caltech24|caltechseed|caltechftfull|caltechfull|caltechfull24|caltechteacher|caltechgoals|caltechlowres|seed|ftfullseed|family|resolution" >&2; exit 2 ;;
esac
