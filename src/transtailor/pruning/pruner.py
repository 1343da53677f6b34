"""Global, budgeted physical filter removal on torch-pruning's dependency graph.

torch-pruning groups every set of coupled channels (a conv's filters with the BatchNorm after it,
the next layer's inputs, all convs joined by a residual add, a depthwise conv's in/out channels,
squeeze-excite and concatenations). A group's channel j is scored by the **sum** of the
importance of its gated members at that channel: removing it removes all of them.

One selection routine, :func:`select`, spends a budget in any cost (:mod:`.cost`: MACs, or
latency measured on the target): within a group channels go from the lowest score up, and the
group's kept width moves down a ladder of allowed widths (every width, or with ``round_to`` N
only multiples of N; a group narrower than N is left alone). Across groups, a greedy choice takes
the cheapest next move: by the mean score of the channels it removes (plain ranking), or, when
``cost_aware``, by score removed per unit of cost saved, looking ahead along the ladder so that a
move saving nothing now but much two rungs down is judged by the whole jump. After each round the
model is pruned, its cost counted again, and rounds repeat until the cost is at or below the
target. The classifier's outputs are never pruned, every group keeps at least ``min_channels``,
and no group loses more than ``max_fraction`` of its channels in one call.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch_pruning as tp

from ..models.measure import layer_macs
from .cost import Cost, GroupLayers, MacCost
from .gates import GateSite

log = logging.getLogger("transtailor")


@dataclass
class PruneRecord:
    macs_before: int
    macs_after: int
    #: filters removed per conv, by name
    removed: dict[str, int] = field(default_factory=dict)
    #: filters per conv after pruning
    remaining: dict[str, int] = field(default_factory=dict)
    #: per gate site, the indices (in the widths before pruning) of the channels removed
    removed_channels: dict[str, list[int]] = field(default_factory=dict)
    #: the budget's cost before and after, in ``cost_unit`` (MACs, or the latency table's ms)
    cost_before: float = 0.0
    cost_after: float = 0.0
    cost_unit: str = "MACs"

    def to_json(self, *, target: float, round_to: int, tries: dict[str, Any] | None = None) -> dict[str, Any]:
        """``pruning.json`` of an iteration: this record, with the step's cost target, the width multiple and,
        for a measured latency step, its tries."""
        out: dict[str, Any] = {"macs_before": self.macs_before, "macs_after": self.macs_after,
                               "removed": self.removed, "remaining": self.remaining,
                               "removed_channels": self.removed_channels,
                               "cost": {"unit": self.cost_unit, "before": self.cost_before, "after": self.cost_after,
                                        "target": target}, "round_to": round_to}
        if tries is not None:
            out["tries"] = tries
        return out


def conv_widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _record(model: nn.Module, widths_before: dict[str, int], gone: dict[str, list[int]], macs: tuple[int, int],
            cost: tuple[float, float], unit: str = "MACs") -> PruneRecord:
    """What a pruning did to ``model``: its widths now against ``widths_before``, the channels ``gone``."""
    widths_after = conv_widths(model)
    return PruneRecord(macs_before=macs[0], macs_after=macs[1],
                       removed={k: widths_before[k] - widths_after.get(k, 0) for k in widths_before},
                       remaining=widths_after, removed_channels={k: sorted(v) for k, v in gone.items()},
                       cost_before=cost[0], cost_after=cost[1], cost_unit=unit)


@dataclass
class _Group:
    """One gated group of the current graph: its root, channel count, and where its channels sit."""

    group: tp.Group
    channels: int
    #: per gate site module: the site's channel index of each of the group's channels
    site_idx: dict[str, list[int]]
    layers: GroupLayers

    def root_name(self, names: dict[nn.Module, str]) -> str:
        return names.get(self.group[0].dep.target.module, "?")

    def prune(self, graph: tp.DependencyGraph, js: list[int]) -> None:
        root = self.group[0]
        graph.get_pruning_group(root.dep.target.module, root.dep.handler, [list(root.idxs)[j] for j in js]).prune()


def _gated_groups(model: nn.Module, image_size: int, head: str, site_modules: set[str]
                  ) -> tuple[tp.DependencyGraph, list[_Group], dict[nn.Module, str]]:
    """The graph and its groups with at least one gated member (the dependency walk both removals share)."""
    device = next(model.parameters()).device
    graph = tp.DependencyGraph().build_dependency(model, torch.zeros(1, 3, image_size, image_size, device=device),
                                                  verbose=False)
    names = {m: n for n, m in model.named_modules()}
    out = []
    for group in graph.get_all_groups(ignored_layers=[model.get_submodule(head)], root_module_types=[nn.Conv2d]):
        n = len(group[0].idxs)
        site_idx: dict[str, list[int]] = {}
        touched: dict[str, tuple[int, int]] = {}
        for dep, idxs in group:
            module, name = dep.target.module, names.get(dep.target.module)
            out_fn = graph.is_out_channel_pruning_fn(dep.handler)
            if name in site_modules and out_fn:
                site_idx[name] = list(idxs)
            if isinstance(module, (nn.Conv2d, nn.Linear)) and name is not None:
                o, i = touched.get(name, (0, 0))
                touched[name] = (o + len(idxs), i) if out_fn else (o, i + len(idxs))
        if site_idx:
            out.append(_Group(group, n, site_idx, GroupLayers(n, touched)))
    return graph, out, names


@dataclass
class RoundProblem:
    """One round's choice: the current groups, each one's channel scores, allowed kept widths below its
    current one (descending) and cost at its current width followed by the cost at each allowed width."""

    graph: tp.DependencyGraph
    groups: list[_Group]
    names: dict[nn.Module, str]
    scores: list[torch.Tensor]
    ladders: list[list[int]]
    costs: list[list[float]]


def round_problem(model: nn.Module, site_modules: set[str], scores: dict[str, torch.Tensor], cost: Cost,
                  image_size: int, head: str, *, min_channels: int = 1, max_fraction: float = 1.0,
                  round_to: int = 1, removed_so_far: dict[str, int] | None = None,
                  start_width: dict[str, int] | None = None) -> RoundProblem:
    """The groups of the model as it is now, with scores, ladders and costs for :func:`select`.

    ``removed_so_far`` and ``start_width`` (per group root) carry the per-layer cap across rounds.
    """
    removed_so_far = {} if removed_so_far is None else removed_so_far
    start_width = {} if start_width is None else start_width
    graph, groups, names = _gated_groups(model, image_size, head, site_modules)
    group_scores, ladders = [], []
    for g in groups:
        score = torch.zeros(g.channels, dtype=torch.float64)
        for name, idx in g.site_idx.items():
            score += scores[name][torch.as_tensor(idx, dtype=torch.long)].double()
        group_scores.append(score)
        root = g.root_name(names)
        start = start_width.setdefault(root, g.channels)
        may_remove = math.floor(max_fraction * start + 1e-9) - removed_so_far.get(root, 0)
        ladders.append(allowed_widths(g.channels, max(min_channels, g.channels - may_remove), round_to))
    costs = cost.group_costs(model, [g.layers for g in groups], [[g.channels] + ks for g, ks in zip(groups, ladders)])
    return RoundProblem(graph, groups, names, group_scores, ladders, costs)


def allowed_widths(n: int, lower: int, round_to: int = 1) -> list[int]:
    """Kept widths a group of ``n`` channels may go down to (descending), none below ``lower``.

    With ``round_to`` N > 1 only multiples of N (at least N); a group with none in range stays as it is.
    """
    lower = max(lower, 1)
    if round_to <= 1:
        return list(range(n - 1, lower - 1, -1))
    top = (n - 1) // round_to * round_to
    bottom = max(lower, round_to)
    return [k for k in range(top, bottom - 1, -round_to)]


def select(scores: list[torch.Tensor], widths: list[list[int]], costs: list[list[float]], need: float,
           cost_aware: bool, min_saving: float = 0.0) -> list[int]:
    """The kept width of each group so that the cost saved reaches ``need`` (greedy, see the module doc).

    ``scores[g]`` are group g's channel scores; ``widths[g]`` its allowed kept widths below its
    current one, descending; ``costs[g]`` the cost at its current width followed by the cost at
    each allowed width. When ``cost_aware``, a move must save more than ``min_saving``: channels
    that buy no time are kept. Returns each group's chosen kept width (its current one if untouched).
    """
    order = [torch.sort(s.double(), stable=True).values for s in scores]
    cums = [torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(o, 0)]) for o in order]
    n = [len(s) for s in scores]
    pos = [0] * len(scores)  # how far down its ladder each group is (0: current width)

    def next_move(g: int) -> tuple[float, int] | None:
        ks, cs, cum = widths[g], costs[g], cums[g]
        if pos[g] >= len(ks):
            return None
        here_k = n[g] if pos[g] == 0 else ks[pos[g] - 1]
        here_c = cs[pos[g]]
        if not cost_aware:
            k = ks[pos[g]]
            return float(cum[n[g] - k] - cum[n[g] - here_k]) / (here_k - k), pos[g] + 1
        best: tuple[float, int] | None = None
        for p in range(pos[g] + 1, len(ks) + 1):  # look ahead: the cheapest ratio to any rung below
            k = ks[p - 1]
            saved = here_c - cs[p]
            if saved <= min_saving:
                continue
            ratio = float(cum[n[g] - k] - cum[n[g] - here_k]) / max(saved, 1e-12)
            if best is None or ratio < best[0]:
                best = (ratio, p)
        return best

    heap: list[tuple[float, int, int]] = []
    for g in range(len(scores)):
        mv = next_move(g)
        if mv is not None:
            heapq.heappush(heap, (mv[0], g, mv[1]))
    saved = 0.0
    while heap and saved < need:
        _, g, p = heapq.heappop(heap)
        saved += costs[g][pos[g]] - costs[g][p]
        pos[g] = p
        mv = next_move(g)
        if mv is not None:
            heapq.heappush(heap, (mv[0], g, mv[1]))
    return [n[g] if pos[g] == 0 else widths[g][pos[g] - 1] for g in range(len(scores))]


def select_knapsack(scores: list[torch.Tensor], widths: list[list[int]], costs: list[list[float]], need: float,
                    min_saving: float = 0.0, bins: int = 2000) -> list[int]:
    """The kept widths that save at least ``need`` while removing the least total score.

    A multiple-choice knapsack (each group picks one width of its ladder, HALP's formulation) solved
    by dynamic programming over the saving, discretised in ``bins`` steps of ``need / bins`` and
    rounded down (so the saving reached is never overstated). Arguments as for :func:`select`. If
    ``need`` cannot be met, the widths that save the most are returned.
    """
    import numpy as np

    if need <= 0:
        return [len(s) for s in scores]
    step = need / bins
    inf = float("inf")
    best = np.full(bins + 1, inf)
    best[0] = 0.0
    choice: list[np.ndarray] = []
    for g, s in enumerate(scores):
        cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.sort(s.double()).values, 0)])
        n = len(s)
        options = [(0, 0.0, -1)]  # (bins saved, score removed, ladder index)
        for p, k in enumerate(widths[g]):
            saved = costs[g][0] - costs[g][p + 1]
            if saved > min_saving:
                options.append((min(int(saved / step), bins), float(cum[n - k]), p))
        new = np.full(bins + 1, inf)
        pick = np.full(bins + 1, -1, dtype=np.int64)
        prev = np.arange(bins + 1)
        for b_saved, loss, p in options:
            cand = np.full(bins + 1, inf)
            src = np.arange(bins + 1)
            if b_saved == 0:
                cand = best + loss
            else:
                cand[b_saved:] = best[:-b_saved] + loss
                src[b_saved:] = np.arange(bins + 1 - b_saved)
            lo = bins - b_saved  # the last bin means "need met": reachable from any bin within b_saved of it
            j = lo + int(np.argmin(best[lo:]))
            if best[j] + loss < cand[bins]:
                cand[bins], src[bins] = best[j] + loss, j
            better = cand < new
            new[better], pick[better], prev[better] = cand[better], p, src[better]
        choice.append(np.stack([pick, prev]))
        best = new
    target = bins if np.isfinite(best[bins]) else int(np.max(np.nonzero(np.isfinite(best))[0]))
    kept = []
    for g in range(len(scores) - 1, -1, -1):
        p, target = int(choice[g][0][target]), int(choice[g][1][target])
        kept.append(len(scores[g]) if p < 0 else widths[g][p])
    return kept[::-1]


def prune_to_budget(
    model: nn.Module,
    sites: list[GateSite],
    scores: dict[str, torch.Tensor],
    cost: Cost,
    target: float,
    image_size: int,
    head: str,
    *,
    min_channels: int = 1,
    max_rounds: int = 10,
    cost_aware: bool = False,
    max_fraction: float = 1.0,
    round_to: int = 1,
    knapsack: bool = False,
) -> tuple[PruneRecord, dict[str, torch.Tensor]]:
    """Remove the lowest-scored channels until ``cost.total(model) <= target``.

    ``knapsack`` (with ``cost_aware``) picks each round's widths by :func:`select_knapsack`, the
    least total score for the saving, instead of the greedy :func:`select`.

    ``scores[site.module]`` holds one value per channel of each gate site. Returns the pruning
    record and the scores of the surviving channels (same keys, shorter tensors).
    """
    scores = {k: v.detach().clone().cpu() for k, v in scores.items()}
    widths_before = conv_widths(model)
    site_modules = {s.module for s in sites}
    removed_so_far: dict[str, int] = {}  # per group root, across rounds
    start_width: dict[str, int] = {}
    original = {k: list(range(len(v))) for k, v in scores.items()}  # surviving channels' first indices
    gone: dict[str, list[int]] = {}
    was_training = model.training
    model.eval()
    cost_before = now = cost.total(model)
    counts_macs = isinstance(cost, MacCost)
    macs_before = int(cost_before) if counts_macs else layer_macs(model, image_size)[0]
    try:
        for _ in range(max_rounds):
            if now <= target:
                break
            rp = round_problem(model, site_modules, scores, cost, image_size, head, min_channels=min_channels,
                               max_fraction=max_fraction, round_to=round_to, removed_so_far=removed_so_far,
                               start_width=start_width)
            graph, groups, names, group_scores, ladders, costs = (rp.graph, rp.groups, rp.names, rp.scores,
                                                                   rp.ladders, rp.costs)
            min_saving = cost.min_saving_share * now
            if knapsack and cost_aware:
                kept = select_knapsack(group_scores, ladders, costs, now - target, min_saving)
            else:
                kept = select(group_scores, ladders, costs, now - target, cost_aware, min_saving)
            chosen = {gi: k for gi, k in enumerate(kept) if k < groups[gi].channels}
            if not chosen:
                if min_saving > 0:
                    log.warning("no channel this step may remove saves time on the target (%.1f %s left, %.1f "
                                "wanted): the model is bound by per-operator overhead there, not by its widths; "
                                "a larger --latency-batch, or --latency-target onnxruntime on a CPU, leaves "
                                "more to gain", now, cost.unit, target)
                else:
                    log.warning("nothing left to prune: every layer is at its minimum width")
                break
            for gi, k in chosen.items():
                g = groups[gi]
                js = torch.sort(group_scores[gi], stable=True).indices[: g.channels - k].tolist()
                root = g.root_name(names)
                removed_so_far[root] = removed_so_far.get(root, 0) + len(js)
                for name, idx in g.site_idx.items():  # keep the scores aligned with the surviving channels
                    drop = {idx[j] for j in js}
                    keep = [i for i in range(len(scores[name])) if i not in drop]
                    scores[name] = scores[name][keep]
                    gone.setdefault(name, []).extend(original[name][i] for i in sorted(drop))
                    original[name] = [original[name][i] for i in keep]
                g.prune(graph, js)
            now = cost.total(model)
    finally:
        model.train(was_training)
    macs_after = int(now) if counts_macs else layer_macs(model, image_size)[0]
    return _record(model, widths_before, gone, (macs_before, macs_after), (cost_before, now), cost.unit), scores


def prune_to_macs(model: nn.Module, sites: list[GateSite], scores: dict[str, torch.Tensor], target_macs: int,
                  image_size: int, head: str, *, min_channels: int = 1, max_rounds: int = 10,
                  flops_aware: bool = False, max_fraction: float = 1.0, round_to: int = 1
                  ) -> tuple[PruneRecord, dict[str, torch.Tensor]]:
    """:func:`prune_to_budget` with MACs as the cost; ``flops_aware`` ranks by score per MAC saved
    (Gate Decorator's FLOPs-aware ranking)."""
    return prune_to_budget(model, sites, scores, MacCost(image_size), target_macs, image_size, head,
                           min_channels=min_channels, max_rounds=max_rounds, cost_aware=flops_aware,
                           max_fraction=max_fraction, round_to=round_to)


def remove_channels(model: nn.Module, sites: list[GateSite], masks: dict[str, torch.Tensor], image_size: int,
                    head: str) -> PruneRecord:
    """Physically remove exactly the channels marked ``True`` in ``masks[site.module]``.

    A coupled channel goes only when every gated member of its group marks it.
    """
    widths_before = conv_widths(model)
    macs_before, _ = layer_macs(model, image_size)
    was_training = model.training
    model.eval()
    gone: dict[str, list[int]] = {}
    try:
        graph, groups, _ = _gated_groups(model, image_size, head, set(masks))
        for g in groups:
            marked = torch.ones(g.channels, dtype=torch.bool)
            for name, idx in g.site_idx.items():
                marked &= masks[name].cpu()[torch.as_tensor(idx, dtype=torch.long)]
            js = marked.nonzero().flatten().tolist()
            if js and len(js) < g.channels:
                for name, idx in g.site_idx.items():
                    gone.setdefault(name, []).extend(idx[j] for j in js)
                g.prune(graph, js)
    finally:
        model.train(was_training)
    macs_after = layer_macs(model, image_size)[0]
    return _record(model, widths_before, gone, (macs_before, macs_after), (macs_before, macs_after))
