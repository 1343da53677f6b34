"""``transtailor compare``: several methods x seeds (x FLOPs budgets) on one dataset and model.

Every (method, budget, seed) is an ordinary run folder under the comparison's folder, made with the
same common options (model, data, image size, epochs, learning rates, regulariser strengths), so
that two rows differ only in the method. A run whose ``summary.json`` exists is not redone; a
search or prune run cut off mid-way resumes from its last complete iteration; a fine-tuning run cut
off mid-way starts again. The comparison writes ``compare.md`` (the table), ``compare.json`` (every
run's numbers) and ``compare.png`` (test top-1 against FLOPs reduction, one curve per method).

TransTailor runs here with ``tau`` off and ``--target-flops-reduction`` set to the budget, so that
its sub-model is compared with the pruning baselines at the same FLOPs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

from ..config import CommonConfig, CompareConfig, FinetuneConfig, PruneConfig, SearchConfig, to_dict
from ..distributed import barrier, is_main
from ..reporting.tables import markdown_table, mean_std
from ..runs import read_json, write_json
from .finetune import finetune
from .prune import prune
from .transtailor import search

log = logging.getLogger("transtailor")

PRUNING = ("l1", "taylor", "sfp", "gbn", "random")
REGULARIZED = ("l2", "l2sp", "delta")


@dataclasses.dataclass
class CompareResult:
    rows: list[dict[str, Any]]
    table: str
    run_dir: Path


def run_label(method: str, budget: float | None) -> str:
    return method if budget is None else f"{method}-{round(100 * budget)}"


def plan_runs(cfg: CompareConfig) -> list[tuple[str, float | None, int]]:
    """(method, budget or None, seed) for every run, in the order they are made."""
    out = []
    for method in cfg.method_list():
        budgets = cfg.budget_list() if method in PRUNING or method == "transtailor" else [None]
        for budget in budgets:
            for seed in cfg.seed_list():
                out.append((method, budget, seed))
    return out


def run_config(cfg: CompareConfig, method: str, budget: float | None, seed: int, out: Path) -> CommonConfig:
    common = {k: v for k, v in to_dict(cfg).items() if k in {f.name for f in dataclasses.fields(CommonConfig)}}
    common.update(seed=seed, out=str(out), preset=None)
    iterative = dict(ft_epochs=cfg.ft_epochs, flops_step=min(cfg.flops_step, budget or 1.0),
                     finetune_epochs=cfg.finetune_epochs)
    if method == "ft":
        return FinetuneConfig(**{**common, "regularizer": "none"}, mode="head")
    if method in ("ft-full",) + REGULARIZED:
        return FinetuneConfig(**{**common, "regularizer": "none" if method == "ft-full" else method}, mode="full")
    if method in PRUNING:
        return PruneConfig(**common, **iterative, method=method, flops_reduction=budget)
    assert budget is not None
    return SearchConfig(**common, **iterative, target_flops_reduction=budget, tau=math.inf,
                        max_iterations=max(1, math.ceil(budget / iterative["flops_step"] - 1e-9)))


def compare(cfg: CompareConfig) -> CompareResult:
    """Make every run that is not finished yet, then write the table, the JSON and the plot."""
    cfg.validate()
    root = Path(cfg.out) if cfg.out else Path("runs") / f"compare-{cfg.model.replace(':', '_')}-{Path(cfg.data).name}"
    write_json(root / "compare_config.json", to_dict(cfg))
    rows = []
    for method, budget, seed in plan_runs(cfg):
        out = root / f"{run_label(method, budget)}-s{seed}"
        summary = out / "summary.json"
        if not summary.is_file():
            log.info("compare: %s, seed %d -> %s", run_label(method, budget), seed, out)
            _make_run(cfg, method, budget, seed, out)
        else:
            log.info("compare: %s, seed %d already done", run_label(method, budget), seed)
        s = read_json(summary)
        rows.append({"method": method, "budget": budget, "seed": seed, "run": out.name,
                     "flops_reduction": s.get("flops_reduction", 0.0), "params": s.get("params"),
                     "macs": s.get("macs"), "val_top1": s.get("val_top1"), "test_top1": s["test_top1"],
                     "wall_seconds": s.get("wall_seconds"), "curve": _curve(out)})
    write_json(root / "compare.json", rows)
    table = comparison_table(rows, cfg)
    if is_main():
        (root / "compare.md").write_text(table + "\n")
        from ..reporting.plots import draw_comparison_plot

        draw_comparison_plot(rows, root / "compare.png")
    return CompareResult(rows, table, root)


def _make_run(cfg: CompareConfig, method: str, budget: float | None, seed: int, out: Path) -> None:
    run_cfg = run_config(cfg, method, budget, seed, out)
    if isinstance(run_cfg, FinetuneConfig):
        if out.exists() and is_main():
            shutil.rmtree(out)  # cut off mid-way: fine-tuning starts again
        barrier()
        finetune(run_cfg)
        return
    if (out / "state.json").is_file():
        run_cfg = dataclasses.replace(run_cfg, resume=str(out))
    elif out.exists() and is_main():
        shutil.rmtree(out)  # cut off during its first FT
    barrier()
    (search if isinstance(run_cfg, SearchConfig) else prune)(run_cfg)


def _curve(out: Path) -> list[tuple[float, float]]:
    it_file = out / "iterations.json"
    if not it_file.is_file():
        return []
    return [(r["flops_reduction"], r["test_top1"]) for r in read_json(it_file)]


def comparison_table(rows: list[dict[str, Any]], cfg: CompareConfig) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(run_label(r["method"], r["budget"]), []).append(r)
    body = [[
        label, str(len(rs)), mean_std([100 * r["flops_reduction"] for r in rs]),
        f"{statistics.mean(r['params'] for r in rs) / 1e6:.2f}" if all(r["params"] for r in rs) else "-",
        mean_std([r["val_top1"] for r in rs if r["val_top1"] is not None]),
        mean_std([r["test_top1"] for r in rs]),
        f"{statistics.mean(r['wall_seconds'] for r in rs):.0f}" if all(r["wall_seconds"] for r in rs) else "-",
    ] for label, rs in groups.items()]
    title = (f"{cfg.model} on {cfg.data}, {cfg.image_size or 'default'} px, {cfg.epochs} epochs per phase, "
             f"seeds {cfg.seeds}")
    return title + "\n\n" + markdown_table(["method", "seeds", "FLOPs red. %", "M params", "val top-1 %",
                                            "test top-1 %", "wall s"], body)
