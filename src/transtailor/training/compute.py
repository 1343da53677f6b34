"""Training compute in FT-Full-epoch equivalents: how many epochs of fine-tuning the whole unpruned model
the same arithmetic would buy, so that runs of different shapes compare on one scale.

One FT-Full epoch is a forward and a backward pass of the unpruned model over the train split, counted
as three forward passes (the backward pass costs about two). From that:

- a full-network epoch of a model with ``macs`` costs ``macs / macs_full``;
- a head-only epoch (FT: everything but the new classifier frozen) runs the forward pass alone: a third;
- a teacher's soft outputs (distillation) add the teacher's forward pass: a third of its share;
- a scoring pass that back-propagates to every layer (Taylor, alpha training) costs as a full epoch.

Validation and test passes are not training and are not counted; wall time is recorded beside this.
"""

from __future__ import annotations

#: the forward pass's share of a training step (forward + backward, the backward about twice the forward)
FORWARD_SHARE = 1.0 / 3.0


def epochs_equivalent(epochs: float, macs: int, macs_full: int, *, mode: str = "full",
                      teacher_macs: int | None = None) -> float:
    """Compute of ``epochs`` training epochs of a model of ``macs`` (``mode`` ``full`` or ``head``), with a
    teacher of ``teacher_macs`` when distilling, in epochs of FT-Full on the unpruned model (``macs_full``)."""
    if mode not in ("full", "head"):
        raise ValueError(f"mode must be 'full' or 'head', got {mode!r}")
    share = macs / macs_full
    per_epoch = share if mode == "full" else share * FORWARD_SHARE
    if teacher_macs is not None:
        per_epoch += teacher_macs / macs_full * FORWARD_SHARE
    return epochs * per_epoch
