"""``beta``: TransTailor's target-aware importance (the paper's, Eq. 3 and 5).

The scaling factors α (one per filter) train for ``--alpha-epochs`` with every weight frozen; then
β = |∂L/∂α · α| is accumulated over the train split as ``--beta`` says
(:mod:`transtailor.pruning.importance`): in a pass of its own after α training (``--beta-from pass``,
the paper's order), or over the last α epoch's own batches (``--beta-from alpha-epoch``), each batch
at the α of that step, which saves the pass. With ``--alpha-epochs 0`` and α = 1 it is the ``taylor``
criterion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...config import option
from ...errors import ConfigError
from ..gates import Gates
from ..importance import BETA_MODES, BetaSums, compute_beta, train_alpha
from .base import Criterion, ScoreContext, Scores, register


@dataclass
class BetaOptions:
    alpha_epochs: int = option(1, "beta: epochs of scaling-factor (alpha) training per iteration")
    alpha_lr: float = option(0.01, "beta: learning rate of the scaling factors")
    alpha_init: str = option("ones", "beta: initial alpha: 'ones' keeps the network's function; 'random' as the "
                             "paper", ("ones", "random"))
    beta: str = option("per-batch", "beta: how dL/dalpha*alpha is accumulated over the train batches", BETA_MODES)
    beta_from: str = option("pass", "beta: 'pass' accumulates beta in a pass of its own after alpha training (the "
                            "paper's); 'alpha-epoch' over the last alpha epoch's batches, with no extra pass",
                            ("pass", "alpha-epoch"))

    def __post_init__(self) -> None:
        if self.alpha_epochs < 0 or self.alpha_lr < 0:
            raise ConfigError(f"--alpha-epochs and --alpha-lr must not be negative, got {self.alpha_epochs}, "
                              f"{self.alpha_lr}")
        if self.beta_from == "alpha-epoch" and self.alpha_epochs < 1:
            raise ConfigError("--beta-from alpha-epoch accumulates beta during the last alpha epoch: it needs "
                              "--alpha-epochs 1 or more")


@register
class Beta(Criterion[BetaOptions]):
    name = "beta"
    summary = "TransTailor's beta (the paper's): alpha trained with the weights frozen, then |dL/dalpha * alpha|"
    Options = BetaOptions
    needs_data = True

    def __call__(self, ctx: ScoreContext) -> Scores:
        opts = self.options
        during = BetaSums((opts.beta,)) if opts.beta_from == "alpha-epoch" else None

        def on_batch(gates: Gates, epoch: int) -> None:
            if during is not None and epoch == opts.alpha_epochs:
                during.add_gates(gates)

        t = time.perf_counter()
        alpha = train_alpha(ctx.model, ctx.sites, ctx.loader, ctx.device, epochs=opts.alpha_epochs,
                            lr=opts.alpha_lr, init=opts.alpha_init, seed=ctx.seed, on_batch=on_batch,
                            on_epoch=ctx.log)
        seconds = {"alpha": time.perf_counter() - t}
        if during is not None:
            beta = during.result()[opts.beta]
        else:
            t = time.perf_counter()
            beta = compute_beta(ctx.model, alpha, ctx.loader, ctx.device, opts.beta)
            seconds["beta"] = time.perf_counter() - t
        return Scores(beta, saved={"alpha": alpha.detached_values()}, seconds=seconds)

    def train_passes(self) -> float:
        """The alpha epochs, and the beta pass unless beta is read off the last alpha epoch."""
        return self.options.alpha_epochs + (1.0 if self.options.beta_from == "pass" else 0.0)
