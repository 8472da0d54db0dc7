import itertools

import numpy as np
import pytest
import torch

from saeprobe.errors import ConfigError
from saeprobe.sae.tokens import read_docs, sample_rows, shuffled_batches
from saeprobe.store import TokenStore, TokenStoreWriter

LAYER = 3
LENGTHS = [5, 9, 3, 12, 7, 4, 10, 6]
WANTED = np.array([0, 2, 3, 5, 6])  # 34 token rows


@pytest.fixture
def store(tmp_path):
    """Column 0 of every row is its document's index, column 1 its row in the store."""
    path = write_store(tmp_path / "tokens.h5", LENGTHS)
    with TokenStore(path) as s:
        yield s


def write_store(path, lengths, nan_doc=None):
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    x = np.zeros((offsets[-1], 4), np.float32)
    x[:, 0] = np.repeat(np.arange(len(lengths)), lengths)
    x[:, 1] = np.arange(offsets[-1])
    if nan_doc is not None:
        x[offsets[nan_doc] + 1, 2] = np.nan
    writer = TokenStoreWriter(path, [LAYER], 4, "float32", {"max_length": 32})
    half = len(lengths) // 2  # two appends, so offsets must carry over between them
    for docs in (range(half), range(half, len(lengths))):
        lo, hi = offsets[docs[0]], offsets[docs[-1] + 1]
        writer.append(
            [f"d{i}" for i in docs],
            [lengths[i] for i in docs],
            np.zeros(hi - lo, np.int32),
            np.zeros(hi - lo, np.int32),
            np.zeros((hi - lo, 2), np.int32),
            {LAYER: torch.from_numpy(x[lo:hi])},
        )
    writer.close()
    return path


def rows_of(docs):
    offsets = np.concatenate([[0], np.cumsum(LENGTHS)])
    return [r for d in docs for r in range(offsets[d], offsets[d + 1])]


def test_read_docs_concatenates_exactly_the_given_docs_in_the_given_order(store):
    x = read_docs(store, LAYER, np.array([3, 1, 6]))
    assert x[:, 1].astype(int).tolist() == rows_of([3, 1, 6])
    assert x[:, 0].astype(int).tolist() == [3] * 12 + [1] * 9 + [6] * 10


def test_read_docs_rejects_nan_activations_only_in_the_docs_read(tmp_path):
    path = write_store(tmp_path / "nan.h5", LENGTHS, nan_doc=2)
    with TokenStore(path) as store:
        assert len(read_docs(store, LAYER, np.array([0, 1, 3]))) == 5 + 9 + 12
        with pytest.raises(ConfigError, match=r"nan\.h5: layer 3 holds NaN"):
            read_docs(store, LAYER, np.array([1, 2]))


def take(store, n, seed):
    batches = shuffled_batches(store, LAYER, WANTED, batch_size=4, buffer_tokens=8, seed=seed)
    return [b.numpy() for b in itertools.islice(batches, n)]


def test_shuffled_batches_are_reproducible_with_a_seed(store):
    first, again, other = take(store, 16, 0), take(store, 16, 0), take(store, 16, 1)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))


def test_shuffled_batches_cover_only_the_requested_docs_each_row_once_per_epoch(store):
    per_epoch = len(rows_of(WANTED)) // 4
    batches = take(store, 2 * per_epoch, seed=0)
    assert all(b.shape == (4, 4) for b in batches)
    for epoch in (batches[:per_epoch], batches[per_epoch:]):
        x = np.concatenate(epoch)
        assert set(x[:, 0].astype(int)) <= set(WANTED.tolist())
        row_ids = x[:, 1].astype(int)
        assert len(set(row_ids)) == len(row_ids) == per_epoch * 4  # no row twice in an epoch
        assert set(row_ids) <= set(rows_of(WANTED))
        assert row_ids.tolist() != sorted(row_ids.tolist())  # shuffled, not store order


def test_sample_rows_is_seeded_and_stays_in_the_requested_docs(store):
    a = sample_rows(store, LAYER, WANTED, n=16, seed=0)
    np.testing.assert_array_equal(a, sample_rows(store, LAYER, WANTED, n=16, seed=0))
    assert not np.array_equal(a, sample_rows(store, LAYER, WANTED, n=16, seed=3))
    assert 0 < len(a) <= 16
    assert set(a[:, 0].astype(int)) <= set(WANTED.tolist())
    assert len(set(a[:, 1].astype(int))) == len(a)  # sampled without replacement
