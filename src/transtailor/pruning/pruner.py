"""Global, MACs-budgeted physical filter removal on torch-pruning's dependency graph.

torch-pruning groups every set of coupled channels (a conv's filters with the BatchNorm after it,
the next layer's inputs, all convs joined by a residual add, a depthwise conv's in/out channels,
squeeze-excite and concatenations). A group's channel j is scored by the **sum** of the
importance of its gated members at that channel: removing it removes all of them. Channels are
ranked globally by score and removed from the lowest up until the model's MACs are at or below
the target; each removal's saving is estimated from the per-layer MACs, then the model is counted
again and the loop repeats if it is still above the target. The classifier's outputs are never
pruned, and every group keeps at least ``min_channels``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch_pruning as tp

from ..models.measure import layer_macs
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


def conv_widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def prune_to_macs(
    model: nn.Module,
    sites: list[GateSite],
    scores: dict[str, torch.Tensor],
    target_macs: int,
    image_size: int,
    head: str,
    *,
    min_channels: int = 1,
    max_rounds: int = 10,
    flops_aware: bool = False,
    max_fraction: float = 1.0,
) -> tuple[PruneRecord, dict[str, torch.Tensor]]:
    """Remove the lowest-scored channels until MACs <= ``target_macs``.

    ``flops_aware`` ranks by score per MAC the channel's removal saves (Gate Decorator's
    FLOPs-aware ranking) instead of by score. ``max_fraction`` caps the share of any group's channels
    one call may remove (the rest of the budget then comes from other layers).

    ``scores[site.module]`` holds one value per channel of each gate site. Returns the pruning
    record and the scores of the surviving channels (same keys, shorter tensors).
    """
    scores = {k: v.detach().clone().cpu() for k, v in scores.items()}
    widths_before = conv_widths(model)
    macs_before, _ = layer_macs(model, image_size)
    device = next(model.parameters()).device
    example = torch.zeros(1, 3, image_size, image_size, device=device)
    head_module = model.get_submodule(head)
    site_modules = {s.module for s in sites}
    removed_so_far: dict[str, int] = {}  # per group root name, across rounds
    original = {k: list(range(len(v))) for k, v in scores.items()}  # surviving channels' first indices
    gone: dict[str, list[int]] = {}
    start_width: dict[str, int] = {}
    was_training = model.training
    model.eval()
    for _ in range(max_rounds):
        macs_now, per_layer = layer_macs(model, image_size)
        if macs_now <= target_macs:
            break
        need = macs_now - target_macs
        graph = tp.DependencyGraph().build_dependency(model, example, verbose=False)
        names = {m: n for n, m in model.named_modules()}
        candidates: list[tuple[float, float, int, int]] = []
        groups = list(graph.get_all_groups(ignored_layers=[head_module], root_module_types=[nn.Conv2d]))
        for gi, group in enumerate(groups):
            n = len(group[0].idxs)
            score = torch.zeros(n)
            cost = torch.zeros(n, dtype=torch.float64)
            gated = False
            for dep, idxs in group:
                module, name = dep.target.module, names.get(dep.target.module)
                out_fn = graph.is_out_channel_pruning_fn(dep.handler)
                idx = torch.as_tensor(list(idxs), dtype=torch.long)
                if name in site_modules and out_fn:
                    score += scores[name][idx]
                    gated = True
                if isinstance(module, (nn.Conv2d, nn.Linear)) and name in per_layer:
                    # a channel may map to several indices (a flatten before a linear layer)
                    per_index = per_layer[name] / max(_width(module, out_fn), 1)
                    cost += per_index * len(idx) / n
            if gated:
                candidates += [(float(score[j]), float(cost[j]), gi, j) for j in range(n)]
        candidates.sort(key=(lambda c: c[0] / max(c[1], 1e-9)) if flops_aware else (lambda c: c[0]))
        chosen: dict[int, list[int]] = {}
        saved = 0.0
        for _score, cst, gi, j in candidates:
            if saved >= need:
                break
            picked = chosen.setdefault(gi, [])
            n = len(groups[gi][0].idxs)
            if n - len(picked) <= min_channels:
                continue
            root_name = names.get(groups[gi][0].dep.target.module, str(gi))
            start = start_width.setdefault(root_name, n)
            if removed_so_far.get(root_name, 0) + len(picked) + 1 > max_fraction * start:
                continue
            picked.append(j)
            saved += cst
        chosen = {gi: js for gi, js in chosen.items() if js}
        if not chosen:
            log.warning("nothing left to prune: every layer is at its minimum width")
            break
        for gi, js in chosen.items():
            group = groups[gi]
            root = group[0]
            root_name = names.get(root.dep.target.module, str(gi))
            removed_so_far[root_name] = removed_so_far.get(root_name, 0) + len(js)
            for dep, idxs in group:  # keep the scores aligned with the surviving channels
                name = names.get(dep.target.module)
                if name in site_modules and graph.is_out_channel_pruning_fn(dep.handler):
                    drop = {list(idxs)[j] for j in js}
                    keep = [i for i in range(len(scores[name])) if i not in drop]
                    scores[name] = scores[name][keep]
                    gone.setdefault(name, []).extend(original[name][i] for i in sorted(drop))
                    original[name] = [original[name][i] for i in keep]
            graph.get_pruning_group(root.dep.target.module, root.dep.handler,
                                    [list(root.idxs)[j] for j in js]).prune()
    model.train(was_training)
    macs_after, _ = layer_macs(model, image_size)
    widths_after = conv_widths(model)
    record = PruneRecord(
        macs_before=macs_before,
        macs_after=macs_after,
        removed={k: widths_before[k] - widths_after.get(k, 0) for k in widths_before},
        remaining=widths_after,
        removed_channels={k: sorted(v) for k, v in gone.items()},
    )
    return record, scores


def _width(module: nn.Module, out: bool) -> int:
    if isinstance(module, nn.Conv2d):
        return module.out_channels if out else module.in_channels
    return module.out_features if out else module.in_features


def remove_channels(model: nn.Module, sites: list[GateSite], masks: dict[str, torch.Tensor], image_size: int,
                    head: str) -> PruneRecord:
    """Physically remove exactly the channels marked ``True`` in ``masks[site.module]``.

    A coupled channel goes only when every gated member of its group marks it.
    """
    widths_before = conv_widths(model)
    macs_before, _ = layer_macs(model, image_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    graph = tp.DependencyGraph().build_dependency(
        model, torch.zeros(1, 3, image_size, image_size, device=device), verbose=False)
    names = {m: n for n, m in model.named_modules()}
    for group in list(graph.get_all_groups(ignored_layers=[model.get_submodule(head)],
                                           root_module_types=[nn.Conv2d])):
        n = len(group[0].idxs)
        marked = torch.ones(n, dtype=torch.bool)
        gated = False
        for dep, idxs in group:
            name = names.get(dep.target.module)
            if name in masks and graph.is_out_channel_pruning_fn(dep.handler):
                marked &= masks[name].cpu()[torch.as_tensor(list(idxs), dtype=torch.long)]
                gated = True
        js = marked.nonzero().flatten().tolist() if gated else []
        if js and len(js) < n:
            root = group[0]
            graph.get_pruning_group(root.dep.target.module, root.dep.handler,
                                    [list(root.idxs)[j] for j in js]).prune()
    model.train(was_training)
    widths_after = conv_widths(model)
    return PruneRecord(macs_before=macs_before, macs_after=layer_macs(model, image_size)[0],
                       removed={k: widths_before[k] - widths_after.get(k, 0) for k in widths_before},
                       remaining=widths_after)
