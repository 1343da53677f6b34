# Sourced by the benchmark scripts: run NAME COMMAND ARGS... runs `$tt COMMAND ARGS... --out $out/NAME`
# unless that run is done (summary.json); a search or prune cut off after a committed iteration
# (state.json) is resumed instead, anything else cut off starts again. Needs $out; $tt names the
# command (default: transtailor); EXTRA is passed to a resume as well.
tt=${TT:-transtailor}

run() {
  local name=$1; shift
  local dir="$out/$name"
  if [ -f "$dir/summary.json" ]; then return; fi
  if [ -f "$dir/state.json" ]; then
    $tt "$1" --resume "$dir" ${EXTRA:-}
  else
    rm -rf "$dir"
    $tt "$@" --out "$dir"
  fi
}
