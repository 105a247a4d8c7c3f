"""batch_loader: whole-batch fetching of tensors gives exactly the per-item loader's batches."""

import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from transfer_core.training.batches import batch_loader
from transfer_core.training.distributed import Distributed, ShardedBatchSampler


def _tensors(n=23):
    return TensorDataset(torch.randn(n, 5), torch.randn(n, 3), torch.arange(n) % 4)


def _epochs(loader, n=3):
    return [[tuple(t.clone() for t in batch) for batch in loader] for _ in range(n)]


def _same(a, b):
    assert len(a) == len(b)
    for epoch_a, epoch_b in zip(a, b):
        assert len(epoch_a) == len(epoch_b)
        for batch_a, batch_b in zip(epoch_a, epoch_b):
            for x, y in zip(batch_a, batch_b):
                assert x.dtype == y.dtype and torch.equal(x, y)


def test_a_shuffled_tensor_loader_gives_the_per_item_loaders_batches_epoch_after_epoch():
    data = _tensors()
    per_item = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(3))
    whole = batch_loader(data, 8, generator=torch.Generator().manual_seed(3))
    assert len(whole) == len(per_item) == 3
    _same(_epochs(per_item), _epochs(whole))


def test_a_weighted_sampler_and_a_sharded_batch_sampler_keep_their_draws():
    data = _tensors()
    weights = torch.linspace(0.1, 1.0, len(data), dtype=torch.double)

    def weighted(seed):
        g = torch.Generator().manual_seed(seed)
        return g, WeightedRandomSampler(weights, len(data), replacement=True, generator=g)

    g1, s1 = weighted(5)
    g2, s2 = weighted(5)
    _same(_epochs(DataLoader(data, batch_size=6, sampler=s1, generator=g1)), _epochs(batch_loader(data, 6, sampler=s2, generator=g2)))

    rank = Distributed(rank=1, world_size=2)
    g1, s1 = weighted(7)
    g2, s2 = weighted(7)
    per_item = DataLoader(data, batch_sampler=ShardedBatchSampler(s1, 6, rank), generator=g1)
    whole = batch_loader(data, 6, batch_sampler=ShardedBatchSampler(s2, 6, rank), generator=g2)
    _same(_epochs(per_item), _epochs(whole))


def test_other_datasets_keep_the_per_item_fetch():
    data = [(torch.full((2,), float(i)), i) for i in range(10)]
    loader = batch_loader(data, 4, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
