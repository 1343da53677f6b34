"""The paper-style figures of a search run, as PNG files in the run folder."""

from __future__ import annotations

from pathlib import Path

from ..records import IterationRecord
from ..runs import RECORD_FILE, RECOVERED_DIR, RESOLUTION_DIR, read_json
from .tables import load_iterations, returned_candidate, returned_iteration


def draw_search_plots(run_dir: str | Path) -> list[Path]:
    """``accuracy_vs_flops.png``, ``accuracy_vs_latency.png`` (when speed-ups were measured) and
    ``pruned_filters.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    rows = load_iterations(run)
    returned = returned_iteration(run)
    red = [100 * r.flops_reduction for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    val = [r.val_top1 for r in rows if r.val_top1 is not None]
    if len(val) == len(rows):
        ax.plot(red, val, "o-", label="validation")
    ax.plot(red, [r.test_top1 for r in rows], "s--", label="test")
    for r, x in zip(rows, red):
        ax.annotate(str(r.iteration), (x, r.test_top1), textcoords="offset points", xytext=(3, -10), fontsize=7)
    best, what = rows[returned], f"iteration {returned}"
    candidate = returned_candidate(run)
    if candidate is not None:
        best, what = candidate, f"start model at {candidate.extra.get('image_size')} px"
    ax.axvline(100 * best.flops_reduction, color="grey", lw=0.8, ls=":", label=f"returned ({what})")
    for name, r, marker in _after_steps(run):
        ax.plot([100 * r.flops_reduction], [r.test_top1], marker, ms=9, ls="none", label=f"{name} (test)")
    ax.set_xlabel("FLOPs reduction (%)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("TransTailor search")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = [run / "accuracy_vs_flops.png"]
    fig.savefig(out[0], dpi=120)
    plt.close(fig)
    latency = _accuracy_vs_latency(plt, run, rows, returned)
    if latency is not None:
        out.append(latency)

    removed: dict[str, int] = {}
    original: dict[str, int] = {}
    for it in range(1, returned + 1):
        rec = read_json(run / f"iter_{it:03d}" / "pruning.json")
        for name, n in rec["removed"].items():
            removed[name] = removed.get(name, 0) + n
            original.setdefault(name, rec["remaining"].get(name, 0) + n)
    if removed:
        names = list(original)
        fracs = [100 * removed[n] / max(original[n], 1) for n in names]
        fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.12), 4))
        ax.bar(range(len(names)), fracs, color="tab:red")
        ax.set_xlabel("conv layer (network order)")
        ax.set_ylabel("filters removed (%)")
        ax.set_title(f"Pruned filters per layer, returned sub-model (iteration {returned})")
        step = max(1, len(names) // 20)
        ax.set_xticks(range(0, len(names), step))
        ax.set_xticklabels([names[i] for i in range(0, len(names), step)], rotation=90, fontsize=6)
        ax.set_ylim(0, 100)
        fig.tight_layout()
        out.append(run / "pruned_filters.png")
        fig.savefig(out[-1], dpi=120)
        plt.close(fig)
    return out


def _after_steps(run: Path) -> list[tuple[str, IterationRecord, str]]:
    """The models trained after the steps, as (legend name, record, marker): the recovered sub-model and the
    lower-resolution candidate, where the run has them."""
    out = []
    recovered = run / RECOVERED_DIR / RECORD_FILE
    if recovered.is_file():
        out.append(("recovered", IterationRecord.from_json(read_json(recovered)), "*"))
    candidate = run / RESOLUTION_DIR / RECORD_FILE
    if candidate.is_file():
        rec = IterationRecord.from_json(read_json(candidate))
        out.append((f"start model at {rec.extra.get('image_size')} px", rec, "P"))
    return out


def _accuracy_vs_latency(plt, run: Path, rows: list[IterationRecord], best: int) -> Path | None:
    """Top-1 against the measured speed-up at the latency batch (with its range over rounds)."""
    if not any(r.speedup_batch is not None for r in rows[1:]):
        return None
    pts = [(r, r.speedup_batch or 1.0, r.speedup_batch_range or [1.0, 1.0]) for r in rows
           if r.speedup_batch is not None or r.iteration == 0]
    xs = [p[1] for p in pts]
    err = [[x - p[2][0] for x, p in zip(xs, pts)], [p[2][1] - x for x, p in zip(xs, pts)]]
    fig, ax = plt.subplots(figsize=(6, 4))
    if all(p[0].val_top1 is not None for p in pts):
        ax.errorbar(xs, [p[0].val_top1 for p in pts], xerr=err, fmt="o-", capsize=3, label="validation")
    ax.errorbar(xs, [p[0].test_top1 for p in pts], xerr=err, fmt="s--", capsize=3, label="test")
    for (r, x, _) in pts:
        ax.annotate(str(r.iteration), (x, r.test_top1), textcoords="offset points", xytext=(3, -10), fontsize=7)
    for name, r, marker in _after_steps(run):
        if r.speedup_batch is not None:
            ax.plot([r.speedup_batch], [r.test_top1], marker, ms=9, ls="none", label=f"{name} (test)")
    best_x = next((x for (r, x, _) in pts if r.iteration == best), None)
    if best_x is not None:
        ax.axvline(best_x, color="grey", lw=0.8, ls=":", label=f"best (iteration {best})")
    first = rows[0]
    ax.set_xlabel(f"measured speed-up ({first.latency_target or 'cpu'}, batch {first.latency_batch or '?'}; "
                  "bars: min-max over rounds)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy against measured speed-up")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = run / "accuracy_vs_latency.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_comparison_plot(rows: list[dict], path: str | Path) -> Path:
    """Test top-1 against FLOPs reduction: one curve per method (mean over seeds), like the paper's Figure 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = {}
    largest: dict[str, float] = {}
    for r in rows:
        if r["budget"] is not None:
            largest[r["method"]] = max(largest.get(r["method"], 0.0), r["budget"])
    for r in rows:  # one curve per method: the runs to its largest budget pass the smaller ones
        if r["budget"] is None or r["budget"] == largest[r["method"]]:
            groups.setdefault(r["method"], []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rs in groups.items():
        curves = [r["curve"] for r in rs if r["curve"]]
        if curves:
            n = min(len(c) for c in curves)
            xs = [100 * sum(c[i][0] for c in curves) / len(curves) for i in range(n)]
            ys = [sum(c[i][1] for c in curves) / len(curves) for i in range(n)]
            ax.plot(xs, ys, "o-", ms=3, label=label)
        else:
            ax.plot([100 * sum(r["flops_reduction"] for r in rs) / len(rs)],
                    [sum(r["test_top1"] for r in rs) / len(rs)], "D", label=label)
    ax.set_xlabel("FLOPs reduction (%)")
    ax.set_ylabel("test top-1 (%), mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
