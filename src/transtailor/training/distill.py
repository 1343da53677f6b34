"""Knowledge distillation during fine-tuning: the sub-model also learns the teacher's soft outputs.

loss = (1 − w) · CE(student, y) + w · T² · KL(softmax(teacher / T) ‖ softmax(student / T))
(Hinton et al. 2015), the cross-entropy with the training's label smoothing. The teacher runs in eval mode
with no gradients, on the same augmented batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Distiller:
    """A training criterion ``(logits, targets, images) -> loss`` that mixes in the teacher's outputs."""

    def __init__(self, teacher: nn.Module, weight: float = 0.5, temperature: float = 4.0,
                 label_smoothing: float = 0.0) -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.weight, self.temperature, self.label_smoothing = weight, temperature, label_smoothing

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            soft = F.softmax(self.teacher(images).float() / self.temperature, dim=1)
        t = self.temperature
        kd = F.kl_div(F.log_softmax(logits.float() / t, dim=1), soft, reduction="batchmean") * t * t
        return (1.0 - self.weight) * ce + self.weight * kd
