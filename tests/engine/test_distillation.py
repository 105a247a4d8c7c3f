"""Knowledge distillation: the loss, the teacher fed the student's views, cached teacher logits, the CLI."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transfer_core import RunDir, Trainer
from transfer_core.cli import main
from transfer_core.errors import WarmstartError
from transfer_core.training import distillation
from transfer_core.training.distillation import DistillationLoss, distillation_config


def test_the_loss_is_hintons_mix_of_soft_and_hard_targets():
    torch.manual_seed(0)
    student, teacher, target = torch.randn(6, 4), torch.randn(6, 4), torch.randint(0, 4, (6,))
    hard = torch.nn.CrossEntropyLoss()
    t = 3.0
    kl = (F.softmax(teacher / t, 1) * (F.log_softmax(teacher / t, 1) - F.log_softmax(student / t, 1))).sum(1).mean() * t * t
    for alpha in (0.0, 0.3, 1.0):
        loss = DistillationLoss(hard, alpha, t)
        loss.teacher_logits = teacher
        assert torch.allclose(loss(student, target), alpha * kl + (1 - alpha) * hard(student, target), atol=1e-6)
    same = DistillationLoss(hard, 1.0, t)
    same.teacher_logits = student
    assert same(student, target).abs() < 1e-6  # a student that matches its teacher pays nothing


@pytest.fixture
def teacher_run(tiny_config, tmp_path):
    return Trainer(tiny_config.replace(epochs=4), tmp_path / "teacher").fit().run


def _count_teacher_batches(monkeypatch) -> list[int]:
    sizes = []
    real = distillation.Teacher.logits

    def counting(self, x):
        sizes.append(len(x))
        return real(self, x)

    monkeypatch.setattr(distillation.Teacher, "logits", counting)
    return sizes


def test_a_frozen_student_gets_the_teachers_logits_once_per_image(teacher_run, tiny_config, tmp_path, monkeypatch):
    sizes = _count_teacher_batches(monkeypatch)
    config = distillation_config(teacher_run.path, tiny_config.backbone, epochs=5)
    result = Trainer(config, tmp_path / "student").fit()
    assert result.status == "finished" and RunDir(tmp_path / "student").read_config().teacher == str(teacher_run.path.resolve())
    train_size = RunDir(tmp_path / "student").read_events({"started"})[0]["train_size"]
    assert sum(sizes) == train_size  # one pass over the training images, not one per epoch


def test_with_augmentation_the_teacher_sees_each_batch_the_student_sees(teacher_run, tiny_config, tmp_path, monkeypatch):
    sizes = _count_teacher_batches(monkeypatch)
    config = distillation_config(teacher_run.path, tiny_config.backbone, epochs=2, strategy="full").replace(augment="light")
    Trainer(config, tmp_path / "student").fit()
    train_size = RunDir(tmp_path / "student").read_events({"started"})[0]["train_size"]
    assert sum(sizes) == 2 * train_size  # every augmented view of every epoch, not a cached one


def test_the_teacher_gets_the_students_pixels_in_its_own_normalisation_and_size(teacher_run, monkeypatch):
    from transfer_core.models.backbone import Preprocessing

    student = Preprocessing(input_size=48, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    teacher = distillation.Teacher(teacher_run.path, student, torch.device("cpu"))
    seen = []
    monkeypatch.setattr(distillation, "run_inference", lambda model, x, device, **kw: seen.append(x) or torch.zeros(len(x), 3))
    pixels = torch.rand(2, 3, 48, 48)
    teacher.logits((pixels - 0.5) / 0.5)
    own = teacher._mean, teacher._std
    expected = F.interpolate((pixels - own[0]) / own[1], size=(teacher.size, teacher.size), mode="bilinear", antialias=True)
    assert seen[0].shape[-1] == teacher.size and torch.allclose(seen[0], expected, atol=1e-5)


def test_bad_teachers_are_one_sentence(teacher_run, tiny_config, tmp_path, color_dataset):
    from transfer_core import RunStore

    fresh = RunStore(tmp_path / "runs").new_run(tiny_config)
    with pytest.raises(WarmstartError, match="has not finished, so it cannot teach"):
        distillation_config(fresh.path, tiny_config.backbone)
    other = color_dataset.parent / "two-colours"
    from ..conftest import COLORS, write_dataset

    write_dataset(other, colors=dict(list(COLORS.items())[:2]))
    with pytest.raises(WarmstartError, match="trained on other classes"):
        Trainer(tiny_config.replace(data=str(other), teacher=str(teacher_run.path)), tmp_path / "mismatch").fit()
    with pytest.raises(WarmstartError, match="augment_views"):
        tiny_config.replace(teacher=str(teacher_run.path), augment="light", augment_views=2)


def test_cli_distill(teacher_run, tiny_config, tmp_path, capsys):
    code = main(["distill", str(teacher_run.path), "--backbone", tiny_config.backbone, "--out", str(tmp_path / "student"), "--epochs", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "student (tiny_cnn) val accuracy" in out and "teacher" in out
    saved = RunDir(tmp_path / "student").read_config()
    assert saved.teacher == str(teacher_run.path.resolve()) and saved.epochs == 3 and saved.distill_alpha == 0.5
    assert main(["distill", str(tmp_path / "nowhere"), "--backbone", tiny_config.backbone, "--out", str(tmp_path / "x")]) != 0


def test_a_distilled_fine_tune_with_head_warm_up_runs(teacher_run, tiny_config, tmp_path):
    """Regression: the head warm-up (an inner loop on features, before fine-tuning) reused the distillation
    loss without teacher logits and crashed; it fits the head on the labels."""
    config = distillation_config(teacher_run.path, tiny_config.backbone, strategy="partial", epochs=2).replace(head_warmup_epochs=2)
    assert Trainer(config, tmp_path / "student").fit().status == "finished"
