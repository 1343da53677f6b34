"""Table of the accuracy-at-equal-latency runs written by ``benchmarks/equal_latency.sh``.

    python benchmarks/equal_latency_table.py benchmarks/results/compare-caltech101-latency

Prints (and writes ``table.md`` and ``rows.json`` beside the runs): FT and FT-Full per seed, every
step of every pruning run with its MAC reduction and measured speed-up, and a summary at equal
measured latency: for each speed-up asked (``--at``), the step of each run whose measured
batch speed-up is nearest to it. Each pruning run's reference (its FT model, iteration 0) is listed
with its measured ms per batch.

A run folder with a ``latency.json`` (``transtailor benchmark RUN``, every sub-model re-measured in
one fresh process, best on an otherwise idle machine) adds its speed-ups as a column, and the
summary at equal latency reads that run's steps from them (``--speedups fresh``, the default; runs
without one keep their own) instead of from the speed-ups the run measured as it went (``--speedups
run``). Re-measure a run whose own measurement was disturbed (e.g. another job shared the CPU).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any


def _references(root: Path) -> list[dict[str, Any]]:
    """Iteration 0 (the FT model every speed-up is measured against) of each pruning run."""
    out = []
    for p in sorted(root.glob("*-s*/iterations.json")):
        first = json.loads(p.read_text())[0]
        out.append({"run": p.parent.name, "ms_batch": first.get("latency_ms_batch")})
    return out


def _fresh(run: Path) -> dict[int, dict[str, Any]]:
    """The run's sub-models re-measured by ``transtailor benchmark`` (``latency.json``), by iteration."""
    path = run / "latency.json"
    if not path.is_file():
        return {}
    return {m["iteration"]: m for m in json.loads(path.read_text())["models"] if m.get("iteration") is not None}


def _runs(root: Path) -> list[dict[str, Any]]:
    rows = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        m = re.fullmatch(r"(.+)-s(\d+)", d.name)
        if not m:
            continue
        label, seed = m.group(1), int(m.group(2))
        if (d / "iterations.json").exists():
            its = json.loads((d / "iterations.json").read_text())
            macs0 = its[0]["macs"]
            fresh = _fresh(d)
            for r in its[1:]:
                again = fresh.get(r["iteration"], {})
                pruning = d / f"iter_{r['iteration']:03d}" / "pruning.json"
                tries = json.loads(pruning.read_text()).get("tries") if pruning.is_file() else None
                rows.append({"run": label, "seed": seed, "iteration": r["iteration"], "tries": tries,
                             "macs_reduction": 1.0 - r["macs"] / macs0, "speedup": r.get("speedup_batch"),
                             "speedup_range": r.get("speedup_batch_range"), "speedup_b1": r.get("speedup_b1"),
                             "fresh": again.get("speedup_batch"), "fresh_range": again.get("speedup_batch_range"),
                             "fresh_b1": again.get("speedup_b1"), "val": r["val_top1"], "test": r["test_top1"]})
        elif (d / "summary.json").exists():
            s = json.loads((d / "summary.json").read_text())
            rows.append({"run": label, "seed": seed, "iteration": None, "macs_reduction": 0.0, "speedup": 1.0,
                         "speedup_range": None, "speedup_b1": 1.0, "fresh": 1.0,
                         "fresh_range": None, "fresh_b1": 1.0, "val": s["val_top1"], "test": s["test_top1"]})
    return rows


def _fmt(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _mean_std(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def _try_drift(tried: list[dict[str, Any]]) -> str:
    """How far the iteration's own measurement of each step lies from the try it took (distinct steps: a
    run continued from another's folder repeats its steps)."""
    steps: dict[tuple, float] = {}
    for r in tried:
        tries = r["tries"]
        if r["speedup"] is None:
            continue
        key = (r["seed"], tuple(map(tuple, tries["table_and_measured_time"])))
        taken = min(tries["table_and_measured_time"], key=lambda p: abs(p[1] - tries["relative_time_wanted"]))[1]
        steps[key] = 1.0 / r["speedup"] - taken
    d = list(steps.values())
    if not d:
        return ""
    spread = f" ± {statistics.stdev(d):.3f}" if len(d) > 1 else ""
    return (f"After fine-tuning minus the try taken, over {len(d)} distinct steps: {statistics.mean(d):+.3f}{spread} "
            f"of the original's time ({sum(x > 0 for x in d)} slower).")


def _speedup(x: float | None, rng: list[float] | None) -> str:
    return "-" if x is None else f"{x:.2f}x" + (f" [{rng[0]:.2f}-{rng[1]:.2f}]" if rng else "")


def table(root: Path, at: list[float], speedups: str = "fresh") -> tuple[str, dict[str, Any]]:
    rows = _runs(root)
    remeasured: set[str] = set()
    for r in rows:  # the speed-up the summary reads
        fresh = r["fresh"] if speedups == "fresh" else None
        r["used"] = r["speedup"] if fresh is None else fresh
        if fresh is not None and r["iteration"] is not None:
            remeasured.add(f"{r['run']}-s{r['seed']}")
    lines = ["| run | seed | step | MACs red. % | speed-up b32 in the run [min-max] | b1 in the run | "
             "b32 re-measured [min-max] | b1 re-measured | val top-1 % | test top-1 % |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['seed']} | {'-' if r['iteration'] is None else r['iteration']} | "
                     f"{100 * r['macs_reduction']:.1f} | {_speedup(r['speedup'], r['speedup_range'])} | "
                     f"{_fmt(r['speedup_b1'])} | {_speedup(r['fresh'], r['fresh_range'])} | {_fmt(r['fresh_b1'])} | "
                     f"{r['val']:.2f} | {r['test']:.2f} |")
    summary = ["| run | at speed-up | seeds | speed-up b32 | MACs red. % | test top-1 % |", "|---|---|---|---|---|---|"]
    tried = [r for r in rows if r.get("tries")]
    if tried:  # the measured steps (--latency-tries): relative time of each try against the original's
        lines += ["", "Measured steps: each try's table total -> measured time, relative to the original's, and "
                  "the step's time as the iteration measured it after fine-tuning", "",
                  "| run | seed | step | time wanted | tries: table -> measured | after fine-tuning |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['seed']} | {r['iteration']} | {r['tries']['relative_time_wanted']:.3f} | "
                  + "; ".join(f"{t:.3f} -> {m:.3f}" for t, m in r["tries"]["table_and_measured_time"])
                  + f" | {_fmt(None if r['speedup'] is None else 1.0 / r['speedup'], 3)} |" for r in tried]
        lines += ["", _try_drift(tried)]
    runs = sorted({r["run"] for r in rows})
    for run in runs:
        mine = [r for r in rows if r["run"] == run]
        if all(r["iteration"] is None for r in mine):
            summary.append(f"| {run} | 1.00 | {len(mine)} | 1.00 | 0.0 | {_mean_std([r['test'] for r in mine])} |")
            continue
        for s in at:
            picks = []
            for seed in sorted({r["seed"] for r in mine}):
                steps = [r for r in mine if r["seed"] == seed and r["used"] is not None]
                if steps:
                    picks.append(min(steps, key=lambda r: abs(r["used"] - s)))
            summary.append(f"| {run} | {s:.2f} | {len(picks)} | {_mean_std([p['used'] for p in picks])} | "
                           f"{_mean_std([100 * p['macs_reduction'] for p in picks])} | "
                           f"{_mean_std([p['test'] for p in picks])} |")
    refs = _references(root)
    ref_lines = ["| run | ms per batch |", "|---|---|"] + [f"| {r['run']} | {_fmt(r['ms_batch'], 1)} |" for r in refs]
    which = "measured in the run" + (f"; re-measured by `transtailor benchmark` for {', '.join(sorted(remeasured))}"
                                      if remeasured else "")
    text = ("Every step\n\n" + "\n".join(lines) + "\n\nAt equal measured latency (per seed, the step whose "
            f"batch-32 speed-up, {which}, is nearest)\n\n" + "\n".join(summary)
            + "\n\nThe reference of each pruning run "
            "(iteration 0, the FT model), measured at its start\n\n" + "\n".join(ref_lines) + "\n")
    return text, {"steps": rows, "references": refs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--at", type=float, nargs="+", default=[1.3, 1.5])
    ap.add_argument("--speedups", choices=["fresh", "run"], default="fresh",
                    help="speed-ups of the summary: a run's re-measure (its latency.json) where it has one, "
                    "or always the run's own")
    args = ap.parse_args()
    text, rows = table(args.root, args.at, args.speedups)
    (args.root / "table.md").write_text(text)
    (args.root / "rows.json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
