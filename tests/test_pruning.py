"""Gates, importance, budgeted pruning and importance-aware fine-tuning on real models."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from transtailor.models import create_model, load_model, save_model
from transtailor.models.measure import layer_macs
from transtailor.pruning import Gates, compute_beta, find_gate_sites, prune_to_macs, train_alpha
from transtailor.pruning.gates import scale_sites
from transtailor.pruning.importance_ft import ImportanceFT, attach_importance, importance_values
from transtailor.training import fit, make_sgd, param_groups

SIZE = 32
CPU = torch.device("cpu")


def _loader(n=16, classes=3, seed=0, shuffle=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, SIZE, SIZE, generator=g)
    y = torch.arange(n) % classes
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))


def _model(name):
    torch.manual_seed(0)
    return create_model(name, num_classes=3, weights="default" if name == "efficientnet_lite0" else "none")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet101", "vgg16", "efficientnet_b0", "mobilenet_v2",
                                  "efficientnet_lite0"])
def test_one_full_iteration(name, tmp_path):
    b = _model(name)
    model, loader = b.model, _loader()
    x = torch.randn(2, 3, SIZE, SIZE)
    macs0, _ = layer_macs(model, SIZE)
    sites = find_gate_sites(model, SIZE, exclude=(b.head,))
    assert sites and all(s.conv != b.head for s in sites)
    alpha = train_alpha(model, sites, loader, CPU, epochs=1)
    beta = compute_beta(model, alpha, loader, CPU)
    record, kept = prune_to_macs(model, sites, beta, int(macs0 * 0.9), SIZE, b.head)
    assert 0.10 <= 1 - record.macs_after / macs0 <= 0.12
    assert all(n >= 1 for n in record.remaining.values())  # no layer emptied
    importance = attach_importance(model, sites, kept, "normalized")  # forward gates, folded at the end
    # a small step: unbounded normalised gates on a network without BN (VGG) diverge at larger ones
    opt = make_sgd(param_groups(model, b.head, 1e-3, 1e-4))
    fit(model, loader, None, opt, CPU, epochs=1)
    model.eval()
    gated = model(x)
    importance.finish(model)
    assert not importance.gates.attached
    torch.testing.assert_close(model(x), gated, atol=1e-4, rtol=1e-4)
    assert gated.shape == (2, 3)
    path = save_model(tmp_path / "m.pt", b)
    torch.testing.assert_close(load_model(path)(x), gated, atol=1e-4, rtol=1e-4)


def test_gate_sites_by_kind():
    vgg = _model("vgg11").model
    assert {s.kind for s in find_gate_sites(vgg, SIZE, exclude=("classifier",))} == {"conv"}
    r18 = _model("resnet18").model
    sites = find_gate_sites(r18, SIZE, exclude=("fc",))
    assert {s.kind for s in sites} == {"bn"} and sites[0].conv == "conv1" and sites[0].module == "bn1"
    lite = _model("efficientnet_lite0").model
    assert {s.kind for s in find_gate_sites(lite, SIZE, exclude=("classifier",))} == {"bn_act"}
    b0 = _model("efficientnet_b0").model  # squeeze-excite convs have no BN after them
    kinds = {s.conv: s.kind for s in find_gate_sites(b0, SIZE, exclude=("classifier",))}
    assert kinds["features.1.0.block.1.fc1"] == "conv" and kinds["features.0.0"] == "bn"


def test_gate_goes_before_a_fused_activation():
    """timm's BatchNormAct2d applies ReLU6 inside: a gate of 2 must act before it, not after."""
    b = _model("efficientnet_lite0")
    m = b.model.eval()
    sites = find_gate_sites(m, SIZE, exclude=(b.head,))
    x = torch.randn(1, 3, SIZE, SIZE)
    stem = sites[0]
    seen = {}
    m.get_submodule(stem.module).register_forward_hook(lambda mod, i, o: seen.__setitem__("out", o))
    m(x)
    plain = seen["out"].clone()
    g = Gates.constant(m, [stem], 2.0).attach(m)
    m(x)
    g.detach()
    assert torch.allclose(seen["out"], torch.clamp(2 * (torch.clamp(plain, 0, 6) * 0 + _pre_act(m, stem, x)), 0, 6))


def _pre_act(m, site, x):
    store = {}
    h = m.get_submodule(site.module).drop.register_forward_pre_hook(lambda mod, i: store.__setitem__("x", i[0]))
    m(x)
    h.remove()
    return store["x"]


def test_preserve_equals_sgd_on_the_divided_parametrisation():
    """β² gradient scaling == dividing the BN affine by β, gating by β and training that (SGD, momentum, wd).

    In float64, so that only the float32 rounding of β² separates the two.
    """
    b = _model("resnet18")
    m = b.model.double()
    sites = find_gate_sites(m, SIZE, exclude=(b.head,))
    g = torch.Generator().manual_seed(1)
    beta = {s.module: torch.rand(m.get_submodule(s.module).num_features, generator=g) for s in sites}
    values = {k: v.double() for k, v in importance_values(beta, "preserve").items()}
    x, y = next(iter(_loader(shuffle=False)))
    x = x.double()

    def train(model, importance):
        opt = make_sgd(param_groups(model, b.head, 0.05, 0.01), momentum=0.9, weight_decay=0.005)
        for _ in range(2):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        importance.finish(model)
        return model.eval()

    ref = copy.deepcopy(m)
    scale_sites(ref, sites, values, power=-1.0)
    gates = Gates(sites, values).attach(ref)
    torch.testing.assert_close(ref.eval()(x), m.eval()(x))  # the function is kept at the start
    ref = train(ref.train(), ImportanceFT(gates=gates))
    hooked = copy.deepcopy(m).train()
    hooked = train(hooked, attach_importance(hooked, sites, beta, "preserve"))
    plain = copy.deepcopy(m).train()
    plain = train(plain, attach_importance(plain, sites, beta, "none"))
    torch.testing.assert_close(hooked(x), ref(x), atol=1e-5, rtol=1e-5)
    assert (plain(x) - ref(x)).abs().max() > 1e-3  # and it is not plain fine-tuning
    from torch.optim.optimizer import _global_optimizer_pre_hooks

    assert not _global_optimizer_pre_hooks  # finish() removed the gradient scaling


def test_literal_importance_changes_the_function():
    b = _model("resnet18")
    m = b.model.eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    sites = find_gate_sites(m, SIZE, exclude=(b.head,))
    beta = {s.module: torch.full((m.get_submodule(s.module).num_features,), 1e-3) for s in sites}
    ref = m(x)
    attach_importance(m, sites, beta, "literal")
    assert (m(x) - ref).abs().max() > 1e-2


def test_beta_modes_and_alpha_training():
    b = _model("resnet18")
    m, loader = b.model, _loader()
    sites = find_gate_sites(m, SIZE, exclude=(b.head,))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    alpha = train_alpha(m, sites, loader, CPU, epochs=2, lr=0.1)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics frozen
    assert any((v - 1).abs().max() > 0 for v in alpha.values.values())  # alpha moved
    fixed = _loader(shuffle=False)  # both passes over the same batches
    lit = compute_beta(m, alpha, fixed, CPU, "literal")
    per = compute_beta(m, alpha, fixed, CPU, "per-batch")
    for k in lit:
        assert (per[k] + 1e-9 >= lit[k]).all()  # |sum| <= sum of |.|
    assert all(p.requires_grad for p in m.parameters())


@pytest.mark.parametrize("mode", ["literal", "per-batch", "squared"])
def test_beta_from_the_last_alpha_epoch_counts_that_epoch_alone(mode):
    """``--beta-from alpha-epoch``: with a zero α learning rate every α step leaves α at 1, so the sums over
    the last α epoch's batches must equal a β pass over the same batches, and not the two epochs'
    sum. With a learning rate, each batch's term is taken at that step's α: it differs from the pass."""
    from transtailor.pruning.criteria import ScoreContext, make_criterion

    b = _model("resnet18")  # no dropout, every BatchNorm frozen: the α epoch's forward equals the pass's
    m = b.model
    sites = find_gate_sites(m, SIZE, exclude=(b.head,))
    fixed = _loader(shuffle=False)
    want = compute_beta(m, Gates.constant(m, sites, 1.0), fixed, CPU, mode)

    def scores(lr: float) -> dict:
        crit = make_criterion("beta", {"alpha_epochs": 2, "alpha_lr": lr, "beta": mode, "beta_from": "alpha-epoch"})
        scored = crit(ScoreContext(m, sites, fixed, CPU))
        assert set(scored.seconds) == {"alpha"}  # no pass of its own
        return scored.scores

    got = scores(0.0)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-9)
    moved = scores(0.5)
    assert any(not torch.allclose(moved[k], want[k], rtol=1e-3) for k in want)
    with pytest.raises(Exception, match="alpha-epochs 1 or more"):
        make_criterion("beta", {"alpha_epochs": 0, "beta_from": "alpha-epoch"})


@pytest.mark.parametrize("mode", ["literal", "per-batch", "squared"])
def test_beta_matches_autograd_on_explicit_scaling_factors(mode):
    """β against an independent computation: α applied by plain forward hooks on each BatchNorm's
    output, ∂L_b/∂α by autograd per batch, then Eq. 5 accumulated by hand. α is drawn away from 1,
    so a β that dropped its ``· α`` factor would differ."""
    b = _model("resnet18")
    m = b.model.eval()
    sites = find_gate_sites(m, SIZE, exclude=(b.head,))
    assert sites and all(s.kind == "bn" for s in sites)  # plain BatchNorm outputs: a hook is the gate
    gen = torch.Generator().manual_seed(0)
    base = Gates.constant(m, sites, 1.0)
    drawn = {k: 0.5 + torch.rand(v.shape, generator=gen) for k, v in base.values.items()}
    fixed = _loader(shuffle=False)
    got = compute_beta(m, Gates(sites, {k: v.clone() for k, v in drawn.items()}), fixed, CPU, mode)

    alphas = {k: v.clone().requires_grad_(True) for k, v in drawn.items()}
    modules = dict(m.named_modules())
    handles = [modules[k].register_forward_hook(lambda mod, i, o, a=a: o * a.view(1, -1, 1, 1))
               for k, a in alphas.items()]
    sums = {k: torch.zeros_like(a) for k, a in alphas.items()}
    try:
        for x, y in fixed:
            grads = torch.autograd.grad(F.cross_entropy(m(x), y), list(alphas.values()))
            for (k, a), g in zip(alphas.items(), grads):
                term = g * a.detach()
                sums[k] += {"literal": term, "per-batch": term.abs(), "squared": term ** 2}[mode]
    finally:
        for h in handles:
            h.remove()
    for k in sums:
        want = sums[k].abs() if mode == "literal" else sums[k]
        torch.testing.assert_close(got[k], want, rtol=1e-4, atol=1e-9)
