import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from saeprobe.errors import ConfigError
from saeprobe.features import encode_documents, pool_latents, sae_fingerprint
from saeprobe.sae import SAEConfig, build_sae, save_sae
from saeprobe.store import TokenStore, TokenStoreWriter

try:  # the features file's reader and writer are moving into the store module
    from saeprobe.store import FeatureFile, write_features
except ImportError:
    from saeprobe.features import FeatureFile, write_features

# Five token codes: rows 0-1 belong to document 0, rows 2-4 to document 1.
Z = torch.tensor(
    [
        [1.0, 0.0, 3.0, 0.0],
        [2.0, 5.0, 0.0, 0.0],
        [0.0, 1.0, 4.0, 2.0],
        [0.0, 0.0, 0.0, 7.0],
        [6.0, 0.0, 1.0, 0.0],
    ]
)
DOC_OF_ROW = torch.tensor([0, 0, 1, 1, 1])
POOLINGS = ["mean", "max", "sum", "last", "topn"]


def test_pool_latents_by_hand():
    out = pool_latents(Z, DOC_OF_ROW, 2, POOLINGS, top_n=[2, 1])
    expected = {
        "sum": [[3, 5, 3, 0], [6, 1, 5, 9]],
        "mean": [[1.5, 2.5, 1.5, 0], [2, 1 / 3, 5 / 3, 3]],
        "max": [[2, 5, 3, 0], [6, 1, 4, 7]],
        "last": [[2, 5, 0, 0], [6, 0, 1, 0]],
        # Per token its two largest positive latents count once; row 3 has only one.
        "top2": [[2, 1, 1, 0], [1, 0, 2, 2]],
        "top1": [[0, 1, 1, 0], [1, 0, 1, 1]],
    }
    assert set(out) == set(expected)
    for pooling, values in expected.items():
        torch.testing.assert_close(out[pooling], torch.tensor(values, dtype=torch.float32))


@pytest.fixture
def store(tmp_path):
    lengths = [3, 1, 5, 2, 4]
    rng = np.random.default_rng(0)
    writer = TokenStoreWriter(tmp_path / "tokens.h5", [2], 6, "float32", {"max_length": 32})
    for i, n in enumerate(lengths):
        writer.append(
            [f"d{i}"],
            [n],
            np.zeros(n, np.int32),
            np.zeros(n, np.int32),
            np.zeros((n, 2), np.int32),
            {2: torch.from_numpy(rng.normal(size=(n, 6)).astype(np.float32))},
        )
    writer.close()
    with TokenStore(tmp_path / "tokens.h5") as s:
        yield s


def small_sae(seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        sae = build_sae(SAEConfig(d_in=6, d_sae=12, k=3))
        sae.b_enc.fill_(0.5)  # most top-k codes positive
    return sae.eval()


def test_encode_documents_equals_encoding_and_pooling_each_doc_by_hand(store):
    sae = small_sae()
    got = encode_documents(sae, store, 2, POOLINGS, top_n=[2], docs_per_chunk=2)
    for i, doc_id in enumerate(store.doc_ids):
        with torch.no_grad():
            z = sae.encode(torch.from_numpy(store.doc(doc_id, 2))).numpy()
        top2 = np.argsort(-z, axis=1)[:, :2]
        topn = np.zeros(12)
        for row, latents in zip(z, top2, strict=True):
            topn[latents] += row[latents] > 0
        expected = {
            "sum": z.sum(0),
            "mean": z.mean(0),
            "max": z.max(0),
            "last": z[-1],
            "top2": topn,
        }
        for pooling, values in expected.items():
            assert got[pooling].shape == (5, 12)
            np.testing.assert_allclose(got[pooling][i].toarray()[0], values, rtol=1e-5, atol=1e-6)


def test_encode_documents_rejects_an_sae_of_another_width(store):
    sae = build_sae(SAEConfig(d_in=8, d_sae=16, k=2))
    with pytest.raises(ConfigError, match=r"SAE reads width 8; .*tokens\.h5 has width 6"):
        encode_documents(sae, store, 2, ["mean"], top_n=[2])


def test_fingerprint_follows_the_weights_not_the_folder(tmp_path):
    sae = small_sae()
    save_sae(sae, tmp_path / "one")
    save_sae(sae, tmp_path / "same")
    with torch.no_grad():
        sae.W_enc[0, 0] += 1e-3
    save_sae(sae, tmp_path / "changed")
    assert sae_fingerprint(tmp_path / "one") == sae_fingerprint(tmp_path / "same")
    assert sae_fingerprint(tmp_path / "one") != sae_fingerprint(tmp_path / "changed")


def write_file(path, features, fingerprint="abc123"):
    with h5py.File(path, "w") as h5:
        h5.create_dataset("doc_ids", data=np.asarray(["d0", "d1", "d2", "d3"], dtype=object))
        write_features(h5, "pretrained", fingerprint, features)


def test_features_round_trip_exactly_with_their_shape(tmp_path):
    # The last row and last column are empty: the shape must come from the file, not the data.
    dense = np.array([[0, 1.5, 0, 0], [2.25, 0, 0, 0], [0, 1e-7, 3e4, 0], [0, 0, 0, 0]], np.float32)
    matrix = sp.csr_matrix(dense)
    write_file(tmp_path / "features.h5", {"mean": matrix, "topn": sp.csr_matrix(dense > 0)})
    features = FeatureFile(tmp_path / "features.h5")
    assert features.doc_ids == ["d0", "d1", "d2", "d3"]
    assert features.fingerprints == {"pretrained": "abc123"}
    read = features.matrix("pretrained", "mean", expected_fingerprint="abc123")
    assert read.shape == (4, 4) and read.dtype == np.float32
    np.testing.assert_array_equal(read.toarray(), dense)
    np.testing.assert_array_equal(
        features.matrix("pretrained", "topn").toarray(), (dense > 0).astype(float)
    )


def test_features_of_another_sae_are_refused_naming_the_file(tmp_path):
    write_file(tmp_path / "features.h5", {"mean": sp.csr_matrix(np.eye(4, dtype=np.float32))})
    features = FeatureFile(tmp_path / "features.h5")
    with pytest.raises(ConfigError, match=r"features\.h5: features of 'pretrained' come from"):
        features.matrix("pretrained", "mean", expected_fingerprint="ffff0000")
    with pytest.raises(ConfigError, match=r"features\.h5: no features of SAE 'other'"):
        features.matrix("other", "mean")
    with pytest.raises(ConfigError, match=r"features\.h5: no 'max' pooling"):
        features.matrix("pretrained", "max")
