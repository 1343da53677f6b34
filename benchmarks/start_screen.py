"""The one-seed screens of how a sub-model is made (start point, teacher, one step or many, recovery) against
the user's alternatives at equal measured speed (FT-Full longer, at a lower resolution): reads the run
folders of ``start_screen.sh`` (and the recovery screen's), re-measures each returned model in a fresh
process with ``transtailor benchmark`` against the unpruned efficientnet_lite0 at 112 px (a lite0 search's
own iteration 0, else cub100's lite0 FT-Full: a fine-tuning run, or a larger model of the family pruned to
lite0's speed) on ONNX Runtime and eager PyTorch, batch 32 (skipped where the file is there), and writes
``table.md`` in each results folder. Compute is in epochs of lite0's FT-Full at 112 px throughout. The run
folders are not kept in the repository, so a row of ``table.md`` whose run folder is gone is kept as it was
(a run that is there again replaces it).

    for job in ftfull lowres oneshot recover24 iterfull24 caltech caltech24; do bash benchmarks/start_screen.sh $job; done
    SEED=1 bash benchmarks/start_screen.sh seed   # and SEED=2: the candidate pair on cub100
    python benchmarks/start_screen.py [--threads 2] [--no-measure]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

import yaml

from _common import RESULTS, markdown_table

SCREEN = RESULTS / "start-screen-cub100"
CALTECH = RESULTS / "recovery-caltech101"
CALTECH_GPU = RESULTS / "recovery-caltech101-gpu"  # benchmarks/gpu_grid.sh: trained on a GPU, re-encoded images
RECOVERY = RESULTS / "recovery-screen-cub100"
#: unpruned efficientnet_lite0 FT-Full runs at 112 px, the first one there is the speed reference (the
#: run folders are not kept: caltech101's serve where cub100's are gone; 101 against 100 classes changes
#: the MACs by less than 0.1 %)
REFERENCES = (RECOVERY / "ft-full-12ep-s0", *(SCREEN / f"ft-full-24ep-s{seed}" for seed in range(3)),
              *(CALTECH / f"caltech-ft-full-{e}ep-s0" for e in (24, 12)),
              *(CALTECH_GPU / f"caltech-ft-full-24ep-s{seed}" for seed in range(3)))  # no model file: MACs only
TARGETS = ("onnxruntime", "cpu")
BASE_MODEL = "efficientnet_lite0"  # every speed-up and compute is against it


def order(label: str) -> tuple[bool, str]:
    """A table's row order: FT-Full runs first, then by name."""
    return not label.startswith("ft-full"), label


def runs(folders: list[Path]) -> list[tuple[str, Path]]:
    """(label, run folder) of every finished run in ``folders``."""
    return [(p.name, p) for p in folders if (p / "summary.json").is_file()]


def listing(folder: Path) -> list[Path]:
    """The run folders in ``folder`` (none where it is not there)."""
    return sorted(folder.iterdir()) if folder.is_dir() else []


#: a search's lower-resolution candidate (--resolution): its own row, ``<run>:resolution``, measured into
#: ``latency-resolution-<target>.json``; the run's own row is then its pruned sub-model, returned or not
CANDIDATE = "resolution"


def model_file(run: Path, which: str = "") -> Path:
    if which == CANDIDATE:
        return run / CANDIDATE / "model.pt"
    if (run / CANDIDATE / "model.pt").is_file():  # the pruned one, returned or not: recovered, else its iteration's
        if (run / "recovered").is_dir():
            return run / "recovered" / "model.pt"
        return run / f"iter_{json.loads((run / 'summary.json').read_text())['best_iteration']:03d}" / "model.pt"
    return run / "best" / "model.pt" if (run / "best").is_dir() else run / "model.pt"


def measure(run: Path, threads: int, which: str = "") -> None:
    if not model_file(run, which).is_file():  # a GPU grid brings back only its searches' models
        print(f"{run.name}: no model file, speed not measured")
        return
    for target in TARGETS:
        out = run / f"latency-{which + '-' if which else ''}{target}.json"
        if out.is_file():
            continue
        own = run / "iter_000" / "model.pt"
        reference = own if own.is_file() and config(run)["model"] == BASE_MODEL else reference_run("model.pt") / "model.pt"
        subprocess.run(["transtailor", "benchmark", str(model_file(run, which)), "--reference", str(reference),
                        "--latency-target", target, "--threads", str(threads), "--rounds", "7",
                        "--output", str(out)], check=True)


def speedup(run: Path, target: str, which: str = "") -> str:
    path = run / f"latency-{which + '-' if which else ''}{target}.json"
    if not path.is_file():
        return "-"
    row = json.loads(path.read_text())["models"][1]
    lo, hi = row["speedup_batch_range"]
    return f"{row['speedup_batch']:.2f} [{lo:.2f}-{hi:.2f}]"


def config(run: Path) -> dict[str, Any]:
    return yaml.safe_load((run / "config.yaml").read_text())


def recompute(run: Path, cfg: dict[str, Any], s: dict[str, Any]) -> float:
    """The compute of a search run written before it was recorded, from its iterations' MACs: FT's head
    epochs (none when it loaded its start model), each step's Taylor pass at the width before it and its
    epochs at the width after it, and the recovery's epochs; a saved unpruned teacher adds a third of an
    epoch to each training epoch."""
    its = json.loads((run / "iterations.json").read_text())
    m0 = its[0]["macs"]
    epochs, teacher = cfg["epochs"], (1 / 3 if cfg.get("distill", "none") != "none" else 0.0)
    in_steps = teacher if cfg.get("distill_in", "all") == "all" else 0.0  # written before --distill-in: all
    step_epochs = cfg.get("finetune_epochs") or epochs
    total = 0.0 if cfg.get("from_ft") else (cfg.get("ft_epochs") or epochs) / 3
    for before, after in zip(its, its[1:]):
        total += (before["macs"] + step_epochs * after["macs"]) / m0 + step_epochs * in_steps
    recover = cfg.get("recover_epochs", 0)
    return total + recover * (its[s["best_iteration"]]["macs"] / m0 + teacher)


def reference_run(needs: str = "summary.json") -> Path:
    """The first of ``REFERENCES`` that holds the file ``needs``."""
    for run in REFERENCES:
        if (run / needs).is_file():
            return run
    raise SystemExit(f"no unpruned {BASE_MODEL} FT-Full run at 112 px to measure against: run "
                     "`bash benchmarks/start_screen.sh ftfullseed` (SEED=0) or `caltechftfull` first")


def _macs_112() -> int:
    return json.loads((reference_run() / "summary.json").read_text())["macs"]


def kept_rows(table: Path, present: set[str]) -> list[list[str]]:
    """The rows of an earlier ``table.md`` whose run is not among ``present`` (its folder is gone)."""
    if not table.is_file():
        return []
    rows = []
    for line in table.read_text().split("\n\nOver seeds")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 8 and cells[0] not in ("run", "---") and \
                cells[0].split(":")[0] not in present:  # a run's candidate row goes with it
            rows.append(cells)
    return rows


def candidate_only(run: Path) -> bool:
    """A run made for its lower-resolution candidate alone: its step was not trained (start_screen.sh resolution)."""
    cfg = config(run)
    return cfg.get("finetune_epochs") == 0 and not cfg.get("recover_epochs") and cfg.get("resolution") not in (None, "off")


def pruned_summary(s: dict[str, Any], run: Path) -> dict[str, Any]:
    """A search summary as if its pruned sub-model were returned: the run's own row (a returned lower-resolution
    candidate replaces the top-level record; the candidate's compute is its own row's)."""
    if "resolution" not in s:
        return s
    pruned = dict(s)
    if s.get("returned") == CANDIDATE:
        pruned.update(json.loads((run / "recovered" / "metrics.json").read_text()))
    if pruned.get("compute_ft_full_epochs") is not None:
        pruned["compute_ft_full_epochs"] -= s["resolution"].get("compute") or 0.0
    return pruned


def describe_candidate(label: str, s: dict[str, Any], run: Path) -> list[str]:
    """The lower-resolution candidate's row: its compute counts the start model it was trained from."""
    cfg, c = config(run), s["resolution"]
    loaded = float(config(Path(cfg["from_ft"]))["epochs"]) if cfg.get("from_ft") else 0.0
    its = json.loads((run / "iterations.json").read_text())
    start = loaded + (its[0].get("compute") or 0.0)
    total = (start + (c.get("compute") or 0.0)) * its[0]["macs"] / _macs_112()
    said = "" if candidate_only(run) else " (returned)" if s.get("returned") == CANDIDATE else " (not returned)"
    return [f"{label}:{CANDIDATE}", str(c["image_size"]), f"{100 * c.get('flops_reduction', 0.0):.1f}",
            speedup(run, "onnxruntime", CANDIDATE), speedup(run, "cpu", CANDIDATE),
            "-" if c.get("val_top1") is None else f"{c['val_top1']:.2f}", f"{c['test_top1']:.2f}{said}",
            f"{total:.1f}"]


def describe(label: str, s: dict[str, Any], run: Path) -> list[str]:
    cfg = config(run)
    s = pruned_summary(s, run)
    extra = ""
    if "best_iteration" in s:  # a search; one that loaded FT-Full with --from-ft counts that run's epochs too
        its = json.loads((run / "iterations.json").read_text())
        # a run whose iterations predate the compute record (resumed later for a recovery) is recomputed
        compute = s.get("compute_ft_full_epochs") if "compute" in its[-1] else recompute(run, cfg, s)
        loaded = float(config(Path(cfg["from_ft"]))["epochs"]) if cfg.get("from_ft") else 0.0  # its FT-Full's
        scale = its[0]["macs"] / _macs_112()  # a larger model's FT-Full epoch in lite0's
        total = None if compute is None else (compute + loaded) * scale
        before = s.get("test_top1_before_recovery")
        extra = f" (before recovery {before:.2f})" if before is not None else ""
    else:  # in epochs of FT-Full at 112 px: a lower resolution's epoch costs its share of the MACs
        total = (s.get("compute_ft_full_epochs") or float(cfg["epochs"])) * s["macs"] / _macs_112()
    return [label, str(cfg["image_size"]), f"{100 * s.get('flops_reduction', 0.0):.1f}",
            speedup(run, "onnxruntime"), speedup(run, "cpu"),
            "-" if s.get("val_top1") is None else f"{s['val_top1']:.2f}", f"{s['test_top1']:.2f}{extra}",
            "-" if total is None else f"{total:.1f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-measure", action="store_true", help="table only, from the latency files there")
    args = ap.parse_args()
    screens = [(SCREEN, [RECOVERY / "ft-full-12ep-s0", RECOVERY / "search-40-recover8-s0", *sorted(SCREEN.iterdir())],
                "cub100", "the dev CPU"),
               (CALTECH, listing(CALTECH), "caltech101", "the dev CPU"),
               (CALTECH_GPU, listing(CALTECH_GPU),
                "caltech101 re-encoded by benchmarks/reencode.py (benchmarks/gpu_grid.sh)", "a GPU")]
    for folder, candidates, data, trained in screens:
        found = runs(candidates)
        rows = kept_rows(folder / "table.md", {label for label, _ in found})
        for label, run in found:
            summary = json.loads((run / "summary.json").read_text())
            models = ("",) if "resolution" not in summary else (CANDIDATE,) if candidate_only(run) else ("", CANDIDATE)
            for which in models:
                if not args.no_measure:
                    measure(run, args.threads, which)
            if not candidate_only(run):
                rows.append(describe(label, summary, run))
            if "resolution" in summary:
                rows.append(describe_candidate(label, summary, run))
        rows.sort(key=lambda r: order(r[0]))
        if not rows:
            continue
        table = markdown_table(["run", "px", "MACs fewer %", "ONNX Runtime speed-up", "eager speed-up",
                                "val top-1 %", "test top-1 %", "compute (FT-Full epochs)"], rows)
        head = (f"{data}, {BASE_MODEL} unless named, seed as named, trained on {trained}; speed-ups on the dev CPU at batch 32, {args.threads} "
                f"threads, against the unpruned {BASE_MODEL} at 112 px, median [min-max] of 7 rounds in a fresh "
                f"process; compute in epochs of {BASE_MODEL}'s FT-Full at 112 px\n\n")
        text = head + table + "\n" + seeds_table(rows)
        (folder / "table.md").write_text(text)
        print(text)


def seeds_table(rows: list[list[str]]) -> str:
    """Mean and sample standard deviation over seeds of each run name (its ``-sN`` cut off; a lower-resolution
    candidate's row, ``<run>:resolution``, apart from its run's), where it has more than one seed: test top-1
    before and after recovery."""
    groups: dict[str, list[list[str]]] = {}
    for row in rows:
        label, colon, which = row[0].partition(":")
        name, _, seed = label.rpartition("-s")
        if seed.isdigit():
            groups.setdefault(name + colon + which, []).append(row)
    lines = []
    for name, rs in groups.items():
        if len(rs) < 2:
            continue
        after = [float(r[6].split()[0]) for r in rs]
        before = [float(r[6].split("before recovery ")[1].rstrip(")")) for r in rs if "before recovery" in r[6]]
        cell = f"{statistics.mean(after):.2f} ± {statistics.stdev(after):.2f}"
        if len(before) == len(rs):
            cell += f" (before recovery {statistics.mean(before):.2f} ± {statistics.stdev(before):.2f})"
        lines.append([name, str(len(rs)), cell, ", ".join(f"{a:.2f}" for a in after)])
    if not lines:
        return ""
    return "\nOver seeds (mean ± sample standard deviation):\n\n" + markdown_table(
        ["run", "seeds", "test top-1 %", "each seed"], lines) + "\n"


if __name__ == "__main__":
    main()
