"""What a model predicted for each image of an evaluation split.

Every evaluation keeps, per image, the label, the predicted class, the cross-entropy and whether the
label is among the top 5. The summary metrics are computed from these, and the run folder keeps them
(``predictions.json``), so that any selection made on them (the best epoch, the stop of the search)
can be recomputed and audited without training again, and two models can be compared image by image
on the same split (:mod:`transtailor.methods.stopping`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Predictions:
    """One model's outcome on each image of one split, in the split's order."""

    labels: torch.Tensor  # int64 [n]
    predicted: torch.Tensor  # int64 [n]
    loss: torch.Tensor  # float64 [n], cross-entropy of each image
    top5: torch.Tensor | None = None  # bool [n]; None with 5 classes or fewer

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> torch.Tensor:
        return self.predicted == self.labels

    def metrics(self) -> dict[str, float]:
        """Mean loss, top-1 (%) and, with more than 5 classes, top-5 (%)."""
        n = max(len(self), 1)
        out = {"loss": float(self.loss.sum()) / n, "top1": 100.0 * int(self.correct.sum()) / n}
        if self.top5 is not None:
            out["top5"] = 100.0 * int(self.top5.sum()) / n
        return out

    def to_json(self, with_labels: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"predicted": self.predicted.tolist(), "loss": [round(v, 6) for v in self.loss.tolist()]}
        if with_labels:
            out["labels"] = self.labels.tolist()
        if self.top5 is not None:
            out["top5"] = [int(v) for v in self.top5.tolist()]
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any], labels: list[int] | None = None) -> "Predictions":
        top5 = d.get("top5")
        return cls(torch.tensor(d["labels"] if labels is None else labels, dtype=torch.long),
                   torch.tensor(d["predicted"], dtype=torch.long), torch.tensor(d["loss"], dtype=torch.float64),
                   None if top5 is None else torch.tensor(top5, dtype=torch.bool))


@dataclass
class Evaluated:
    """A model's predictions on validation (None without a validation split) and test, and, when it
    came out of a training phase, every epoch's validation predictions and the epoch kept."""

    test: Predictions
    val: Predictions | None = None
    val_epochs: dict[int, Predictions] | None = None
    kept_epoch: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"test": self.test.to_json()}
        if self.val is not None:
            out["val"] = self.val.to_json()
            if self.val_epochs:
                out["val"]["epochs"] = {str(e): p.to_json(with_labels=False) for e, p in self.val_epochs.items()}
                out["val"]["kept_epoch"] = self.kept_epoch
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Evaluated":
        val = d.get("val")
        labels = None if val is None else val["labels"]
        return cls(test=Predictions.from_json(d["test"]),
                   val=None if val is None else Predictions.from_json(val),
                   val_epochs=None if val is None or "epochs" not in val else
                   {int(e): Predictions.from_json(p, labels) for e, p in val["epochs"].items()},
                   kept_epoch=None if val is None else val.get("kept_epoch"))
