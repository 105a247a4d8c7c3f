"""One run on two processes (Gloo on the CPU), as torchrun would start it.

The processes meet through a file rendezvous in the test's temporary folder (no ports to
collide), train the tiny backbone, and each writes what it saw to its own JSON file.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from transfer_core import RunDir, TrainConfig, Trainer
from transfer_core.data.image_cache import LabeledImages
from transfer_core.data.splits import load_run_split
from transfer_core.training.distributed import Distributed, ShardedBatchSampler

from ..conftest import TINY  # noqa: F401  (registers the tiny backbone in the spawned processes too)

WORLD = 2


def _digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _rank_main(rank: int, config_json: str, run_dir: str, scratch: str) -> None:
    """One rank: join the group, train, and record images read, files written and the weights."""
    dist.init_process_group("gloo", init_method=f"file://{scratch}/rendezvous", rank=rank, world_size=WORLD)
    reads, writes = [0], []
    real_getitem = LabeledImages.__getitem__

    def counting_getitem(self, i):
        reads[0] += 1
        return real_getitem(self, i)

    LabeledImages.__getitem__ = counting_getitem
    for method in ("write_with", "append_lines", "write_config", "mark_owner"):
        real = getattr(RunDir, method)
        setattr(RunDir, method, lambda self, *a, _real=real, _name=method, **k: (writes.append(_name), _real(self, *a, **k))[1])
    trainer = Trainer(TrainConfig.from_dict(json.loads(config_json)), run_dir)
    result = trainer.fit()
    report = result.report or {}
    Path(scratch, f"rank{rank}.json").write_text(json.dumps({
        "reads": reads[0], "writes": writes, "digest": _digest(trainer.model),
        "history": report.get("history"), "val_accuracy": report.get("val_accuracy"),
    }))
    dist.destroy_process_group()


def _run_two_ranks(config: TrainConfig, run_dir: Path, scratch: Path, timeout: float = 240) -> list[dict]:
    scratch.mkdir(parents=True, exist_ok=True)
    context = mp.start_processes(
        _rank_main, args=(json.dumps(config.to_dict()), str(run_dir), str(scratch)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two-process run did not finish in time")
    return [json.loads((scratch / f"rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.fixture
def two_rank_config(tiny_config):
    return tiny_config.replace(strategy="frozen", epochs=3, dropout=0.0, batch_size=7, seed=3)


def test_two_processes_train_the_same_model_as_one(two_rank_config, tmp_path):
    """Global batch semantics: same metrics as one process; rank 0 alone writes; extraction is split."""
    ranks = _run_two_ranks(two_rank_config, tmp_path / "two", tmp_path / "scratch")
    one = Trainer(two_rank_config, tmp_path / "one").fit().report

    assert ranks[0]["digest"] == ranks[1]["digest"]  # identical parameters on every rank
    assert ranks[0]["writes"] and not ranks[1]["writes"]  # only rank 0 touched the run folder
    run = RunDir(tmp_path / "two")
    assert run.status() == "finished" and len([e for e in run.read_events() if e["event"] == "started"]) == 1

    train, val = load_run_split(two_rank_config)
    assert ranks[0]["reads"] + ranks[1]["reads"] == len(train) + len(val)  # each image extracted once, by one rank
    assert abs(ranks[0]["reads"] - ranks[1]["reads"]) <= 2
    read = next(e for e in run.read_events() if e["event"] == "cached" and e["what"] == "images")
    assert read["message"].startswith(f"Read {len(train) + len(val)} images")  # both ranks' shares, none "already in memory"

    for two, single in zip(ranks[0]["history"], one["history"]):
        assert two["train_loss"] == pytest.approx(single["train_loss"], rel=1e-4, abs=1e-5)
        assert two["val_loss"] == pytest.approx(single["val_loss"], rel=1e-4, abs=1e-5)
        assert two["val_accuracy"] == single["val_accuracy"]


def test_unfreezing_stages_stay_synchronised_across_processes(tiny_config, tmp_path):
    """Layers unfrozen after DDP wrapped the model still get their gradients all-reduced."""
    config = tiny_config.replace(strategy="gradual", unfreeze_every=1, epochs=3, dropout=0.0, batch_size=8)
    ranks = _run_two_ranks(config, tmp_path / "run", tmp_path / "scratch")
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert RunDir(tmp_path / "run").status() == "finished"


def test_sharded_batches_cover_each_global_batch_once_with_loss_weights():
    order = list(range(10))  # global batches [0..3], [4..7], [8, 9]
    slices = []
    for rank in range(3):
        sampler = ShardedBatchSampler(order, 4, Distributed(rank, 3))
        slices.append([(batch, sampler.next_share()) for batch in sampler])
    assert [b for b, _ in slices[0]] == [[0, 3], [4, 7], [8]]
    assert [b for b, _ in slices[2]] == [[2], [6], [8]]  # nothing left of the last batch: one repeat, weight 0
    assert [s for _, s in slices[2]] == [(1, 4), (1, 4), (0, 2)]
    for step in range(3):  # weights own * world / global average to the global mean
        shares = [slices[r][step][1] for r in range(3)]
        assert sum(own for own, _ in shares) == shares[0][1]
