"""Knowledge distillation: a finished run (the teacher) trains a new, usually smaller, model (the student).

The student's loss is the classic one of Hinton et al. (2015)::

    alpha * KL(teacher || student at temperature T) * T**2  +  (1 - alpha) * cross-entropy(labels)

Softening both outputs by T shows the student how the teacher ranks the wrong classes too (a
dandelion that looks a little like a sunflower), which carries more than the label alone; the T**2
keeps that term's gradients on the cross-entropy's scale. The teacher sees exactly the student's
input, augmented view included ("consistent" distillation, Beyer et al., 2022): each batch's
images are converted to the teacher's own normalisation and size. When the student's inputs repeat
every epoch (no augmentation, so its frozen part's outputs are cached), the teacher's logits are
computed once per image too and travel with the cached inputs, so distilling costs one teacher
pass over the training images, which a CPU can afford.

It is a loss and a batch step of the ordinary loop, not a second loop: a distilled run is a run
like any other (curves, evaluation, export) whose config names its teacher.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WarmstartError
from ..features.inference import run_inference
from ..models.registry import Preprocessing

__all__ = ["DistillationLoss", "Teacher", "distillation_config", "distilled", "teacher_for"]


class Teacher:
    """A finished run's network, fed the student's normalised images, giving raw logits (no gradients)."""

    def __init__(self, run: str | Path, student: Preprocessing, device: torch.device) -> None:
        from ..deploy.predict import load_trained_model
        from ..runs.store import RunDir

        model, info = load_trained_model(run)
        self.model = model.to(device).eval()
        # Names the teacher's fixed weights, so that on a CPU it runs through ONNX Runtime like any frozen network.
        checkpoint = RunDir(run).checkpoint_file  # exists: load_trained_model read it
        self.key = f"teacher:{checkpoint.resolve()}:{checkpoint.stat().st_mtime_ns}"
        self.device = device
        self.classes = list(info["classes"])
        own = Preprocessing.from_dict(info["preprocessing"])
        self.size = own.input_size
        shape = (1, 3, 1, 1)
        self._student_mean, self._student_std = (torch.tensor(v, device=device).view(shape) for v in (student.mean, student.std))
        self._mean, self._std = (torch.tensor(v, device=device).view(shape) for v in (own.mean, own.std))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits of a batch normalised for the student: the same pixels, in the teacher's normalisation and size."""
        x = x.float() * self._student_std + self._student_mean
        x = (x - self._mean) / self._std
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return run_inference(self.model, x.contiguous(), self.device, module=self.model, batch_size=max(64, len(x)),
                             frozen_key=self.key).to(x.device)

    def logits_of(self, dataset, batch_size: int = 64) -> torch.Tensor:
        """``(len(dataset), classes)`` logits of a dataset of ``(normalised image, class)`` items, in its order."""
        rows = []
        for start in range(0, len(dataset), batch_size):
            batch = torch.stack([dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))])
            rows.append(self.logits(batch.to(self._mean.device)).cpu())
        return torch.cat(rows)


def teacher_for(config, student: Preprocessing, device: torch.device, classes: list[str]) -> Teacher | None:
    """The config's teacher (None without one), checked against the student's classes.

    Raises:
        WarmstartError: the teacher is not a finished run, or was trained on other classes.
    """
    if not config.teacher:
        return None
    teacher = Teacher(config.teacher, student, device)
    if teacher.classes != list(classes):
        raise WarmstartError(f"The teacher run '{Path(config.teacher).name}' was trained on other classes "
                             f"({', '.join(teacher.classes)}); a teacher must know the same classes as its student.")
    return teacher


class DistillationLoss(nn.Module):
    """``alpha`` · KL(teacher ‖ student, both at ``temperature``) · T² + (1 − ``alpha``) · ``hard`` (the run's own loss).

    The teacher's logits of the current batch are set in :attr:`teacher_logits` by the batch step
    (see :func:`distilled`) just before the loop calls the loss.
    """

    def __init__(self, hard: nn.Module, alpha: float, temperature: float) -> None:
        super().__init__()
        self.hard, self.alpha, self.temperature = hard, float(alpha), float(temperature)
        self.teacher_logits: torch.Tensor | None = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        soft = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(self.teacher_logits.to(logits.dtype) / t, dim=1),
                        log_target=True, reduction="batchmean") * (t * t)
        return self.alpha * soft + (1.0 - self.alpha) * self.hard(logits, target)


def distilled(criterion: nn.Module, prepare: Callable, teacher: Teacher | None, config, cached: bool) -> tuple[nn.Module, Callable]:
    """The loop's loss and batch step for distillation (unchanged without a teacher).

    ``cached``: the training batches are cached inputs ``(inputs, teacher logits, classes)`` (see
    :meth:`~transfer_core.training.inputs.RunInputs.epoch_inputs`); otherwise they hold images,
    and the teacher runs on each batch as the student sees it (augmentation and mixing included).
    """
    if teacher is None:
        return criterion, prepare
    loss = DistillationLoss(criterion, config.distill_alpha, config.distill_temperature)

    def prepare_distilled(batch):
        x, target, y = prepare(batch)
        loss.teacher_logits = batch[1].to(x.device) if cached else teacher.logits(x)
        return x, target, y

    return loss, prepare_distilled


def distillation_config(teacher_run: str | Path, backbone: str, **changes):
    """The teacher's own recipe, data and split for a student ``backbone`` that learns from it.

    ``changes`` (``None`` values ignored) override settings, e.g. ``strategy``, ``epochs``,
    ``distill_alpha``, ``distill_temperature``. The student keeps its backbone's own input size.

    Raises:
        WarmstartError: ``teacher_run`` is not a finished run.
    """
    from ..config import Strategy
    from ..runs.store import RunDir

    run = RunDir(teacher_run)
    base = run.read_config()
    if run.read_report() is None or not run.checkpoint_file.exists():
        raise WarmstartError(f"Run '{run.name}' has not finished, so it cannot teach yet; choose a finished run.")
    chosen = {k: v for k, v in changes.items() if v is not None}
    frozen = Strategy(chosen.get("strategy", base.strategy)) is Strategy.FROZEN
    return base.replace(backbone=backbone, teacher=str(run.path.resolve()), image_size=None, augment_views=0,
                        ema_decay=0.0 if frozen else base.ema_decay, **chosen)
