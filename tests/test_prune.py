"""Pruning baselines on the shared loop: budget, steps, criteria, bad input."""

import json

import pytest
import torch

from transtailor.cli import main
from transtailor.config import PruneConfig
from transtailor.methods import prune
from transtailor.models import create_model
from transtailor.pruning import find_gate_sites
from transtailor.pruning.criteria import CRITERIA, l1_scores, per_layer, taylor_scores

from conftest import TINY, TINY_TRAIN


# every registered criterion with its defaults, and the non-default options that take another path
@pytest.mark.parametrize("method, extra", [*((name, {}) for name in sorted(CRITERIA)), ("taylor", {"taylor_on": "weight"})])
def test_each_criterion_meets_the_budget(method, extra, tiny_folder, tmp_path):
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / method), method=method, flops_reduction=0.2,
                            method_options=extra, **TINY))
    assert res.summary.method == method and res.summary.iterations == 1
    assert 0.18 <= res.summary.best.flops_reduction <= 0.22
    assert res.summary.stopped == "target_flops_reduction"


def test_steps_reach_the_budget_exactly(tiny_folder, tmp_path):
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "r"), method="l1", flops_reduction=0.25,
                            flops_step=0.1, **TINY))
    reductions = [r.flops_reduction for r in res.iterations]
    assert len(reductions) == 4  # FT, then 10 %, 20 % and the last 5 %
    assert reductions[1] == pytest.approx(0.1, abs=0.01) and reductions[2] == pytest.approx(0.2, abs=0.01)
    assert reductions[3] == pytest.approx(0.25, abs=0.02)


def test_no_layer_loses_more_than_the_cap_in_one_step(tiny_folder, tmp_path):
    shares = {}
    for cap in (1.0, 0.3):
        prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / str(cap)), method="l1", flops_reduction=0.3,
                          max_layer_fraction=cap, **TINY))
        rec = json.loads((tmp_path / str(cap) / "iter_001" / "pruning.json").read_text())
        shares[cap] = max(rec["removed"][k] / (rec["removed"][k] + rec["remaining"][k]) for k in rec["removed"])
        assert rec["macs_after"] <= 0.71 * json.loads((tmp_path / str(cap) / "state.json").read_text())["macs_original"]
    assert shares[0.3] <= 0.3 < shares[1.0]


def test_random_is_seeded(tiny_folder, tmp_path):
    widths = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / name), method="random", flops_reduction=0.2,
                          **{**TINY, "seed": seed}))
        widths.append(json.loads((tmp_path / name / "iter_001" / "pruning.json").read_text())["remaining"])
    assert widths[0] == widths[1] != widths[2]


def test_gbn_tick_scores_while_training_and_folds_its_gates():
    import copy

    from torch.utils.data import DataLoader, TensorDataset

    from transtailor.pruning.gates import fold_gates
    from transtailor.pruning.criteria.gbn import train_alpha_with_taylor

    torch.manual_seed(0)
    b = create_model("resnet18", num_classes=3, weights="none")
    sites = find_gate_sites(b.model, 32, exclude=("fc",))
    loader = DataLoader(TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16,))), batch_size=8)
    before = {n: p.detach().clone() for n, p in b.model.named_parameters()}
    gates, taylor = train_alpha_with_taylor(b.model, sites, loader, torch.device("cpu"), lr=0.5, l1=1e-3)
    assert set(taylor) == {s.module for s in sites}
    assert all(torch.equal(p, before[n]) for n, p in b.model.named_parameters())  # the weights stayed frozen
    assert any((v - 1).abs().max() > 1e-3 for v in gates.values.values())  # the gates trained
    gated = copy.deepcopy(b.model).eval()
    gates.attach(gated)
    x = torch.randn(2, 3, 32, 32)
    expected = gated(x)
    gates.detach()
    fold_gates(b.model, gates)
    torch.testing.assert_close(b.model.eval()(x), expected, atol=1e-4, rtol=1e-4)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in b.model.modules())


def test_flops_aware_ranking_prefers_cheap_scores_per_mac(tiny_folder, tmp_path):
    """Cheap, low-scored filters (layer4 at 1x1) go first by score; costly ones (layer1) per MAC saved."""
    from transtailor.pruning import prune_to_macs
    from transtailor.models.measure import layer_macs

    widths = []
    for aware in (False, True):
        b = create_model("resnet18", num_classes=3, weights="none")
        sites = find_gate_sites(b.model, 32, exclude=("fc",))
        scores = {s.module: torch.full((b.model.get_submodule(s.module).num_features,),
                                       0.5 if s.module.startswith("layer4") else 1.0) for s in sites}
        target = int(0.9 * layer_macs(b.model, 32)[0])
        record, _ = prune_to_macs(b.model, sites, scores, target, 32, "fc", flops_aware=aware)
        assert record.macs_after <= target
        widths.append(record.removed)
    layer = lambda removed, prefix: sum(v for k, v in removed.items() if k.startswith(prefix))  # noqa: E731
    assert layer(widths[0], "layer4") > 0 and layer(widths[0], "layer1") == 0
    assert layer(widths[1], "layer1") > 0 and layer(widths[1], "layer4") == 0


def test_sfp_zeroes_softly_then_removes_exactly_those_filters():
    from transtailor.models.measure import layer_macs
    from transtailor.pruning.pruner import remove_channels
    from transtailor.pruning.soft import soft_select, zero_channels

    torch.manual_seed(0)
    b = create_model("resnet18", num_classes=3, weights="none")
    sites = find_gate_sites(b.model, 32, exclude=("fc",))
    target = int(0.8 * layer_macs(b.model, 32)[0])
    shapes = {n: p.shape for n, p in b.model.named_parameters()}
    masks = soft_select(b.model, sites, target, 32, "fc")
    zero_channels(b.model, sites, masks)
    assert {n: p.shape for n, p in b.model.named_parameters()} == shapes  # soft: nothing removed
    m = masks["layer2.0.bn1"]
    assert 0 < m.sum() < len(m)
    conv, bn = b.model.layer2[0].conv1, b.model.layer2[0].bn1
    assert conv.weight[m].abs().sum() == 0 and bn.weight[m].abs().sum() == 0 and bn.bias[m].abs().sum() == 0
    assert conv.weight[~m].abs().flatten(1).sum(1).min() > 0
    survivors = conv.weight[~m].detach().clone()
    record = remove_channels(b.model, sites, masks, 32, "fc")
    assert record.macs_after <= target
    for s in sites:  # exactly the zeroed filters went, no more
        assert record.removed[s.conv] == int(masks[s.module].sum()), s.conv
    torch.testing.assert_close(b.model.layer2[0].conv1.weight, survivors)


class _ScaledStem(torch.nn.Module):
    """A model with a plain tensor attribute (not a buffer): a weightless copy cannot run it."""

    def __init__(self):
        super().__init__()
        self.body = create_model("resnet18", num_classes=3, weights="none").model
        self.scale = torch.ones(1, 3, 1, 1)

    def forward(self, x):
        return self.body(x * self.scale)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "scaled"])
def test_the_soft_dry_run_selects_what_a_hard_prune_removes(name):
    """SFP's selection runs on a weightless copy of the structure (or, where that cannot run, a full
    copy): the channels it marks are those a hard prune of the model with the same scores removes."""
    import copy

    from transtailor.models.measure import layer_macs
    from transtailor.pruning.pruner import prune_to_macs
    from transtailor.pruning.soft import l2_scores, soft_select

    torch.manual_seed(0)
    model = _ScaledStem() if name == "scaled" else create_model(name, num_classes=3, weights="none").model
    head = "body.fc" if name == "scaled" else ("fc" if name == "resnet18" else "classifier.1")
    sites = find_gate_sites(model, 32, exclude=(head,))
    scores = l2_scores(model, sites)
    target = int(0.7 * layer_macs(model, 32)[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = soft_select(model, sites, target, 32, head, round_to=8)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the model is untouched
    record, _ = prune_to_macs(copy.deepcopy(model), sites, scores, target, 32, head, round_to=8)
    assert record.macs_after <= target
    for s in sites:
        expected = torch.zeros(len(scores[s.module]), dtype=torch.bool)
        expected[record.removed_channels.get(s.module, [])] = True
        assert torch.equal(masks[s.module], expected), s.module
    assert sum(int(m.sum()) for m in masks.values()) > 0


def test_taylor_on_weights_sums_grad_times_weight_per_filter_and_squares_per_batch():
    torch.manual_seed(0)
    b = create_model("resnet18", num_classes=3, weights="none")
    conv, bn = b.model.layer1[0].conv1, b.model.layer1[0].bn1
    torch.nn.init.normal_(bn.weight)
    torch.nn.init.normal_(bn.bias)
    sites = find_gate_sites(b.model, 32, exclude=("fc",))
    batches = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])) for _ in range(2)]
    b.model.fc.weight.requires_grad_(False)
    b.model.train()
    before = {k: v.clone() for k, v in b.model.state_dict().items()}

    scores = taylor_scores(b.model, sites, batches, torch.device("cpu"), on="weight")

    assert b.model.training and not b.model.fc.weight.requires_grad and conv.weight.requires_grad
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in before.items())
    expected = torch.zeros(conv.out_channels)
    b.model.eval()
    for x, y in batches:  # the square of each batch's filter sum, summed over batches
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(b.model(x), y),
                                    [conv.weight, bn.weight, bn.bias])
        expected += ((grads[0] * conv.weight).sum(dim=(1, 2, 3)) + grads[1] * bn.weight
                     + grads[2] * bn.bias).detach().pow(2)
    torch.testing.assert_close(scores["layer1.0.bn1"], expected)
    assert set(scores) == {s.module for s in sites}


def test_l1_scores_are_filter_norms():
    b = create_model("resnet18", num_classes=3, weights="none")
    sites = find_gate_sites(b.model, 32, exclude=("fc",))
    scores = l1_scores(b.model, sites)
    w = b.model.layer1[0].conv1.weight
    torch.testing.assert_close(scores["layer1.0.bn1"], w.abs().sum(dim=(1, 2, 3)))
    scaled = per_layer(scores)
    assert all(v.mean().item() == pytest.approx(1.0) for v in scaled.values())


@pytest.mark.parametrize("args, words", [
    (["--method", "magnitude"], "invalid choice"),
    (["--flops-reduction", "1"], "--flops-reduction must be in (0, 1)"),
    (["--flops-reduction", "0"], "--flops-reduction must be in (0, 1)"),
    (["--flops-reduction", "-0.2"], "--flops-reduction must be in (0, 1)"),
])
def test_bad_input(args, words, capsys):
    try:
        code = main(["prune", *args])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0]


def test_from_ft_starts_from_that_model_and_refuses_one_that_does_not_fit(tiny_folder, tmp_path, capsys):
    from conftest import write_folder
    from transtailor.config import FinetuneConfig
    from transtailor.methods import finetune

    ft = finetune(FinetuneConfig(data=str(tiny_folder), out=str(tmp_path / "ft"), mode="head", **TINY_TRAIN))
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "p"), method="l1", flops_reduction=0.2,
                            from_ft=str(tmp_path / "ft"), **TINY))
    first = res.iterations[0]
    assert first.from_ft == str(tmp_path / "ft") and first.test_top1 == ft.summary.test_top1
    assert first.seconds["finetune"] < 5 and first.best_epoch is None  # loaded, not trained
    common = ["prune", "--model", "resnet18", "--weights", "none", "--image-size", "32", "--epochs", "1",
              "--workers", "0", "--no-latency", "--flops-reduction", "0.2", "--recover-epochs", "0"]
    other = write_folder(tmp_path / "other", {"x": 6, "y": 6}, "train")
    write_folder(other, {"x": 2, "y": 2}, "test")
    cases = [(["--data", str(other), "--from-ft", str(tmp_path / "ft")], "trained on 3 classes, not on this data's 2"),
             (["--data", str(tiny_folder), "--from-ft", str(tmp_path / "p")], "not an unpruned resnet18"),
             (["--data", str(tiny_folder), "--from-ft", str(tmp_path / "nowhere")], "no such model file")]
    for i, (args, words) in enumerate(cases):
        assert main([*common, *args, "--out", str(tmp_path / f"bad{i}")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert not (tmp_path / f"bad{i}").exists()  # checked before the run folder is made


def test_resume_and_from_ft_do_not_read_the_pretrained_weights(tiny_folder, tmp_path):
    """The FT model or the run's own checkpoint replaces them, so a weights file gone since is not missed."""
    import torchvision

    from transtailor.config import FinetuneConfig
    from transtailor.errors import ModelError
    from transtailor.methods import finetune

    weights = tmp_path / "w.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    tiny_train = {**TINY_TRAIN, "weights": str(weights)}
    tiny = {**TINY, **tiny_train}
    ft = finetune(FinetuneConfig(data=str(tiny_folder), out=str(tmp_path / "ft"), mode="head", **tiny_train))
    done = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "p"), method="l1", flops_reduction=0.2,
                             **tiny))
    weights.unlink()
    with pytest.raises(ModelError, match="no such file"):  # a fresh run does need them
        prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "fresh"), method="l1", flops_reduction=0.2,
                          **tiny))
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "f"), method="l1", flops_reduction=0.2,
                            from_ft=str(tmp_path / "ft"), **tiny))
    assert res.iterations[0].test_top1 == ft.summary.test_top1
    resumed = prune(PruneConfig(resume=str(tmp_path / "p")))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(resumed.model(x), done.model(x), rtol=0, atol=0)


def test_l1_ranks_each_layer_against_itself_by_default(tiny_folder, tmp_path):
    import statistics

    def fractions(scope):
        res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / str(scope)), method="l1",
                                flops_reduction=0.2, scope=scope, **TINY))
        rec = json.loads((res.run_dir / "iter_001" / "pruning.json").read_text())
        return {k: v / (v + rec["remaining"][k]) for k, v in rec["removed"].items()}, rec["removed_channels"]

    default, default_channels = fractions(None)
    layer, layer_channels = fractions("layer")
    glob, _ = fractions("global")
    assert default_channels == layer_channels  # l1's default is the per-layer ranking of Li et al.
    # a global ranking of raw weight norms hits some layers hard and spares others; per layer it is even
    assert statistics.pstdev(default.values()) < statistics.pstdev(glob.values())


def test_sfp_records_the_channels_it_removed_and_refuses_distill(tiny_folder, tmp_path):
    from transtailor.errors import ConfigError
    from transtailor.methods.prune import check_criterion
    from transtailor.models import load_model

    with pytest.raises(ConfigError, match="drop --distill"):
        prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "no"), method="sfp", distill="previous",
                          distill_in="all", **TINY))
    assert not (tmp_path / "no").exists()  # refused before anything was written
    # a teacher of the recovery alone is no teacher step: allowed
    check_criterion(PruneConfig(data=str(tiny_folder), method="sfp", distill="previous", recover_epochs=1))
    res = prune(PruneConfig(data=str(tiny_folder), out=str(tmp_path / "sfp"), method="sfp", flops_reduction=0.2,
                            **TINY))
    pruning = json.loads((res.run_dir / "iter_001" / "pruning.json").read_text())
    removed = pruning["removed_channels"]
    assert removed
    # each gated layer's recorded indices are distinct and as many as the filters its conv lost
    sites = {s.module: s.conv for s in find_gate_sites(load_model(res.run_dir / "iter_000" / "model.pt"), 32)}
    for name, idx in removed.items():
        assert len(set(idx)) == len(idx) == pruning["removed"][sites[name]] > 0


def test_gbn_tick_scores_are_the_taylor_scores_of_its_gates():
    # with the gates held at 1 (no step, no sparsity) the tick's scores are exactly the output-Taylor
    # scores that plain Taylor pruning computes on its own path
    from torch.utils.data import DataLoader, TensorDataset

    from transtailor.pruning.criteria.gbn import train_alpha_with_taylor

    torch.manual_seed(0)
    b = create_model("resnet18", num_classes=3, weights="none")
    sites = find_gate_sites(b.model, 32, exclude=("fc",))
    loader = DataLoader(TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16,))), batch_size=8)
    _, tick = train_alpha_with_taylor(b.model, sites, loader, torch.device("cpu"), lr=0.0, l1=0.0)
    plain = taylor_scores(b.model, sites, loader, torch.device("cpu"))
    for k, v in plain.items():
        torch.testing.assert_close(tick[k].cpu(), v, rtol=1e-4, atol=1e-7)
    assert sum(float(v.sum()) for v in plain.values()) > 0


def test_output_taylor_scores_match_an_independent_computation():
    # |sum over positions of dL/dz * z| per filter of each BatchNorm output z, summed over batches
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    b = create_model("resnet18", num_classes=3, weights="none")
    model = b.model.eval()
    sites = find_gate_sites(model, 32, exclude=("fc",))
    xs, ys = torch.randn(12, 3, 32, 32), torch.randint(0, 3, (12,))
    scores = taylor_scores(model, sites, DataLoader(TensorDataset(xs, ys), batch_size=6), torch.device("cpu"))
    expected = {s.module: torch.zeros_like(scores[s.module]) for s in sites}
    for x, y in ((xs[:6], ys[:6]), (xs[6:], ys[6:])):
        outs = {}

        def keep(m, i, o, k):  # the network goes on with a copy: in-place ReLUs and residual adds leave z as it is
            outs[k] = o
            return o.clone()

        hooks = [model.get_submodule(s.module).register_forward_hook(
            lambda m, i, o, k=s.module: keep(m, i, o, k)) for s in sites]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        for h in hooks:
            h.remove()
        grads = torch.autograd.grad(loss, [outs[s.module] for s in sites])
        for s, g in zip(sites, grads):
            expected[s.module] += (g * outs[s.module]).sum(dim=(0, 2, 3)).abs().detach()
    for k, v in expected.items():
        torch.testing.assert_close(scores[k], v, rtol=1e-4, atol=1e-6)
