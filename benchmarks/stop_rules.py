"""Replay stop rules on the uncut search trajectories written by ``benchmarks/stop_rules.sh``.

    python benchmarks/stop_rules.py benchmarks/results/stop-rules-cub10

A search stopped by a rule is the uncut trajectory cut short (each iteration is seeded by (seed,
iteration) alone), so each rule is replayed on the saved records and validation predictions of
every run (``iterations.json``, ``iter_NNN/predictions.json``): it walks the iterations and returns
the last one it kept. Rules: the package's ``loss`` (5 % and 10 %) and ``paper`` (tau 0.3), and two
paired tests that were tried and not adopted: the exact one-sided McNemar test on top-1 against the
best-top-1 model so far (a fall of more than tau that is significant at p < 0.05), and a one-sided
paired test on the per-image losses against the lowest-loss model so far (p < 0.05).

For each trajectory kind (``tt-<epoch choice>`` searches, ``taylor-<epoch choice>`` pruning runs)
and rule, a row gives over the seeds: the returned iteration per seed, the FLOPs reduction and test
top-1 of what is returned, the best test top-1 any pruned iteration of the run reached, and the gap.
A second table gives test top-1 per step of each trajectory kind (equal FLOPs), and the FT-Full
references. Writes ``stop_rules.md`` beside the runs.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from _common import mean_std
from transtailor.methods.stopping import StopRule
from transtailor.records import IterationRecord
from transtailor.training.predictions import Evaluated

Rule = Callable[[list[dict[str, Any]], dict[str, Any]], bool]  # (kept so far, candidate) -> stop


def _mcnemar_p(worse: int, better: int) -> float:
    n = worse + better
    return 1.0 if n == 0 else sum(math.comb(n, k) for k in range(worse, n + 1)) / 2.0**n


def mcnemar_rule(tau: float = 0.3, p: float = 0.05) -> Rule:
    def stop(kept: list[dict[str, Any]], cur: dict[str, Any]) -> bool:
        ref = max(kept, key=lambda r: r["val_top1"])
        a, b = ref["_val"].correct, cur["_val"].correct
        worse, better = int((a & ~b).sum()), int((~a & b).sum())
        return ref["val_top1"] - cur["val_top1"] > tau and _mcnemar_p(worse, better) < p
    return stop


def paired_loss_rule(p: float = 0.05) -> Rule:
    def stop(kept: list[dict[str, Any]], cur: dict[str, Any]) -> bool:
        ref = min(kept, key=lambda r: r["val_loss"])
        d = cur["_val"].loss - ref["_val"].loss
        sd = float(d.std())
        if sd == 0:
            return float(d.mean()) > 0
        z = float(d.mean()) / (sd / math.sqrt(len(d)))
        return 0.5 * math.erfc(z / math.sqrt(2)) < p  # one-sided, normal approximation
    return stop


def package_rule(rule: StopRule) -> Rule:
    def stop(kept: list[dict[str, Any]], cur: dict[str, Any]) -> bool:
        return rule.check([IterationRecord.from_json(r) for r in kept], IterationRecord.from_json(cur)).stop
    return stop


RULES: dict[str, Rule] = {
    "loss 5 % (default)": package_rule(StopRule("loss", loss_tolerance=0.05)),
    "loss 10 %": package_rule(StopRule("loss", loss_tolerance=0.10)),
    "paper (tau 0.3)": package_rule(StopRule("paper", tau=0.3)),
    "McNemar vs best top-1": mcnemar_rule(),
    "paired loss test": paired_loss_rule(),
}


def _trajectory(run: Path) -> list[dict[str, Any]]:
    its = json.loads((run / "iterations.json").read_text())
    for rec in its:
        pred = Evaluated.from_json(json.loads((run / f"iter_{rec['iteration']:03d}" / "predictions.json").read_text()))
        rec["_val"] = pred.val
    return its


def replay(its: list[dict[str, Any]], rule: Rule) -> tuple[int, bool]:
    """(the iteration the rule returns, whether it stopped within the trajectory)."""
    for k in range(1, len(its)):
        if rule(its[:k], its[k]):
            return k - 1, True
    return len(its) - 1, False


def _runs(root: Path) -> dict[str, dict[int, Path]]:
    runs: dict[str, dict[int, Path]] = {}
    for d in sorted(root.iterdir()):
        m = re.fullmatch(r"(.+)-s(\d+)", d.name)
        if m and (d / "summary.json").exists():
            runs.setdefault(m.group(1), {})[int(m.group(2))] = d
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    args = ap.parse_args()
    runs = _runs(args.root)
    trajs = {kind: {s: _trajectory(d) for s, d in seeds.items()} for kind, seeds in runs.items()
             if not kind.startswith("ft-full")}
    lines = [f"# Stop rules replayed on {args.root.name}", "",
             "| trajectory | rule | seeds | returned iteration | stopped | FLOPs fewer % | test top-1 % "
             "| best pruned test top-1 % | gap to best pruned |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, by_seed in trajs.items():
        for name, rule in RULES.items():
            got = {s: replay(its, rule) for s, its in by_seed.items()}
            returned = [by_seed[s][it] for s, (it, _) in got.items()]
            best = [max(r["test_top1"] for r in its[1:]) for its in by_seed.values()]
            lines.append(
                f"| {kind} | {name} | {len(by_seed)} | {', '.join(str(it) for it, _ in got.values())} | "
                f"{sum(stopped for _, stopped in got.values())}/{len(got)} | "
                f"{mean_std([100 * r['flops_reduction'] for r in returned])} | {mean_std([r['test_top1'] for r in returned])} | "
                f"{mean_std(best)} | {mean_std([b - r['test_top1'] for b, r in zip(best, returned)])} |")
    steps = max((len(its) for by_seed in trajs.values() for its in by_seed.values()), default=0)
    lines += ["", "## Test top-1 % at each step (mean ± sd over seeds; step k removed about 10k % of the FLOPs)", "",
              "| trajectory | seeds | " + " | ".join(f"step {k}" for k in range(steps)) + " |",
              "|---|---|" + "---|" * steps]
    for kind, by_seed in trajs.items():
        cols = [[its[k]["test_top1"] for its in by_seed.values() if len(its) > k] for k in range(steps)]
        lines.append(f"| {kind} | {len(by_seed)} | " + " | ".join(mean_std(c) for c in cols) + " |")
    lines += ["", "| reference | seeds | test top-1 % |", "|---|---|---|"]
    for kind, seeds in runs.items():
        if kind.startswith("ft-full"):
            tops = [json.loads((d / "summary.json").read_text())["test_top1"] for d in seeds.values()]
            lines.append(f"| {kind} | {len(seeds)} | {mean_std(tops)} |")
    lines += ["", "## Per run: val top-1 / val loss / test top-1 at each step", ""]
    for kind, by_seed in trajs.items():
        for s, its in sorted(by_seed.items()):
            lines.append(f"- {kind} s{s} (val {len(its[0]['_val'])} images): " + ", ".join(
                f"{r['val_top1']:.1f} / {r['val_loss']:.3f} / {r['test_top1']:.2f}" for r in its))
    text = "\n".join(lines) + "\n"
    print(text)
    (args.root / "stop_rules.md").write_text(text)


if __name__ == "__main__":
    main()
