import torch
from torch import nn

from transfer_core import TrainConfig, TransferModel, count_parameters, get_backbone, set_trainable_groups, trainable_groups_at
from transfer_core.models.transfer import freeze_bn_of_frozen_layers, parameter_counts
from transfer_core.training.optim import optimizer_param_groups

from ..conftest import TINY


def _model():
    return TransferModel(get_backbone(TINY).build(pretrained=False), num_classes=3, dropout=0.1)


def test_strategies_choose_how_many_groups_train():
    assert [trainable_groups_at(TrainConfig(strategy="frozen"), e, 9) for e in range(3)] == [0, 0, 0]
    assert trainable_groups_at(TrainConfig(strategy="partial", trainable_blocks=2), 0, 9) == 2
    assert trainable_groups_at(TrainConfig(strategy="partial", trainable_blocks=20), 0, 9) == 9
    assert trainable_groups_at(TrainConfig(strategy="full"), 0, 9) == 9
    gradual = TrainConfig(strategy="gradual", unfreeze_every=2)
    assert [trainable_groups_at(gradual, e, 3) for e in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_frozen_groups_have_no_grad_and_their_batchnorm_stays_in_eval():
    model = _model()
    set_trainable_groups(model, 1)
    stages = model.backbone.stages
    assert not any(p.requires_grad for p in stages[0].parameters())
    assert all(p.requires_grad for p in stages[2].parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    freeze_bn_of_frozen_layers(model)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [bn.training for bn in bns] == [False, False, True]
    before = bns[0].running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(bns[0].running_mean, before)
    counts = count_parameters(model)
    expected = sum(p.numel() for p in stages[2].parameters()) + sum(p.numel() for p in model.head.parameters())
    assert counts.trainable == expected and counts.total == sum(p.numel() for p in model.parameters())


def test_parameter_counts_follow_the_strategy_from_first_to_last_epoch():
    head = 32 * 3 + 3  # tiny backbone: 32 features into a 3-class head
    total = sum(p.numel() for p in _model().parameters())
    frozen = parameter_counts(TrainConfig(backbone=TINY, strategy="frozen"), 3)
    assert frozen.groups == 3
    assert frozen.first_epoch == frozen.last_epoch and frozen.last_epoch.trainable == head
    assert frozen.last_epoch.total == total
    full = parameter_counts(TrainConfig(backbone=TINY, strategy="full"), 3)
    assert full.last_epoch.trainable == total and full.last_epoch.frozen == 0
    gradual = parameter_counts(TrainConfig(backbone=TINY, strategy="gradual", unfreeze_every=1, epochs=4), 3)
    assert gradual.first_epoch.trainable == head and gradual.last_epoch.trainable == total
    partial = parameter_counts(TrainConfig(backbone=TINY, strategy="partial", trainable_blocks=1), 3)
    assert head < partial.last_epoch.trainable < total


def test_discriminative_learning_rates_and_no_decay_on_norms():
    groups = {g["name"]: g for g in optimizer_param_groups(_model(), lr=1e-2, backbone_lr_factor=0.1, weight_decay=0.05)}
    assert groups["head"]["lr"] == 1e-2
    assert abs(groups["backbone"]["lr"] - 1e-3) < 1e-12
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim <= 1 for p in groups["backbone_no_decay"]["params"])
    assert groups["head"]["weight_decay"] == 0.05


def test_inference_runs_a_module_in_eval_mode_and_gives_each_layer_its_own_mode_back():
    """A training model with a frozen (eval-mode) BatchNorm inside: inference sees every layer in eval
    mode, and afterwards the frozen norm is still in eval mode while the rest trains again."""
    from transfer_core.features.inference import eval_mode

    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Dropout(0.5), nn.Linear(3, 2))
    model.train()
    model[1].eval()
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False, True, True]
    model.eval()
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert not any(m.training for m in model.modules())


def test_head_dropout_keeps_each_value_with_probability_one_minus_p_and_scales_it_like_nn_dropout():
    from transfer_core.models.transfer import HeadDropout

    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    dropout = HeadDropout(0.3).train()
    y = dropout(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()  # the gradient flows through the kept values only, scaled alike
    assert torch.equal(x.grad, kept.float() / 0.7)
    assert torch.equal(dropout.eval()(x), x)
    assert torch.equal(HeadDropout(0.0).train()(x), x)
    assert not HeadDropout(1.0).train()(x).any()
    assert abs(nn.Dropout(0.3).train()(x).ne(0).float().mean().item() - 0.7) < 0.005  # what it stands in for
    half = dropout.train()(torch.ones(400, 500, dtype=torch.bfloat16))  # fine-tuning under bf16 autocast
    assert half.dtype == torch.bfloat16 and abs(half.ne(0).float().mean().item() - 0.7) < 0.005
