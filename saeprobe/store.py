"""The activation store: ragged token-level activations in HDF5, pooled vectors in Parquet.

tokens.h5 layout (one file per data set):
    doc_ids     (n_docs,)        str, in stored order (sorted by length, not input order)
    offsets     (n_docs + 1,)    int64, doc i owns token rows offsets[i]:offsets[i+1]
    token_ids   (n_tokens,)      int32, so a feature can be traced back to text
    positions   (n_tokens,)      int32, index in the tokenized sequence (BOS counts)
    char_spans  (n_tokens, 2)    int32, character span of the token in the text (-1 if unknown)
    layers/<L>  (n_tokens, d)    float16, float32, or bfloat16 stored as its uint16 bit
                                 pattern (attrs["token_dtype"] says which), chunked by rows
BOS, CLS, SEP and padding are never stored.

features.h5 layout (one file per data set and layer; written by the features stage):
    doc_ids                          (n_docs,) str, in the token store's order
    <sae>/<pooling>/{data, indices, indptr}   CSR matrix (n_docs, d_sae), float32
    attrs["<sae>.fingerprint"]       hash of the SAE weights the features came from
    attrs["<sae>.task_docs"]         the task's texts the SAE was fine-tuned on (0: none)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from saeprobe.errors import ConfigError
from saeprobe.io import atomic_path

CHUNK_ROWS = 1024


def encode_tokens(values: torch.Tensor, dtype: str) -> np.ndarray:
    """Tensor -> array as stored. bfloat16 keeps its bits: HDF5 has no bf16 type, and fp16
    overflows on the outlier dimensions of some models' residual streams."""
    if dtype == "bfloat16":
        return values.to(torch.bfloat16).cpu().view(torch.int16).numpy().view(np.uint16)
    return values.to(getattr(torch, dtype)).cpu().numpy()


def decode_tokens(stored: np.ndarray, dtype: str) -> np.ndarray:
    """Stored array -> float32."""
    if dtype == "bfloat16":
        return (stored.astype(np.uint32) << 16).view(np.float32)
    return stored.astype(np.float32, copy=False)


class TokenStoreWriter:
    """Append batches of documents; memory stays flat whatever the data set's size."""

    def __init__(self, path: Path, layers: list[int], d_model: int, dtype: str, attrs: dict):
        self.file = h5py.File(path, "w")
        self.layers = layers
        self.doc_ids: list[str] = []
        self.offsets = [0]
        for key, value in attrs.items():
            self.file.attrs[key] = value
        self.file.attrs["layers"] = np.asarray(layers, dtype=np.int64)
        self.file.attrs["d_model"] = d_model
        self.file.attrs["token_dtype"] = dtype
        self.dtype = dtype
        self._create("token_ids", (0,), np.int32)
        self._create("positions", (0,), np.int32)
        self._create("char_spans", (0, 2), np.int32)
        for layer in layers:
            storage = np.uint16 if dtype == "bfloat16" else np.dtype(dtype)
            self._create(f"layers/{layer}", (0, d_model), storage)

    def _create(self, name: str, shape: tuple[int, ...], dtype) -> None:
        chunks = (CHUNK_ROWS, *shape[1:])
        self.file.create_dataset(
            name, shape=shape, maxshape=(None, *shape[1:]), dtype=dtype, chunks=chunks
        )

    def append(
        self,
        doc_ids: list[str],
        lengths: list[int],
        token_ids: np.ndarray,
        positions: np.ndarray,
        char_spans: np.ndarray,
        acts: dict[int, torch.Tensor],
    ) -> None:
        n = len(token_ids)
        start = self.offsets[-1]
        for name, values in (
            ("token_ids", token_ids),
            ("positions", positions),
            ("char_spans", char_spans),
        ):
            _extend(self.file[name], start, values)
        for layer in self.layers:
            if self.dtype == "float16" and acts[layer].abs().max() > torch.finfo(torch.float16).max:
                raise ConfigError(
                    f"layer {layer} activations overflow float16; set 'extract.token_dtype' "
                    "to bfloat16 or float32"
                )
            values = encode_tokens(acts[layer], self.dtype)
            _extend(self.file[f"layers/{layer}"], start, values)
        self.doc_ids.extend(doc_ids)
        self.offsets.extend((start + np.cumsum(lengths)).tolist())
        assert self.offsets[-1] == start + n

    def close(self) -> None:
        self.file.create_dataset(
            "doc_ids", data=np.asarray(self.doc_ids, dtype=object), dtype=h5py.string_dtype()
        )
        self.file.create_dataset("offsets", data=np.asarray(self.offsets, dtype=np.int64))
        self.file.close()


def _extend(dataset: h5py.Dataset, start: int, values: np.ndarray) -> None:
    dataset.resize(start + len(values), axis=0)
    dataset[start:] = values


class TokenStore:
    """Read-only view of tokens.h5."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"token activations {self.path} do not exist; run extract first")
        self.file = h5py.File(self.path, "r")
        self.layers = [int(x) for x in self.file.attrs["layers"]]
        self.d_model = int(self.file.attrs["d_model"])
        self.dtype = str(self.file.attrs["token_dtype"])
        # The tokenization the activations came from, so consumers re-tokenize alike.
        self.max_length = int(self.file.attrs["max_length"])
        self.offsets = self.file["offsets"][:]
        self.doc_ids = [s.decode() if isinstance(s, bytes) else s for s in self.file["doc_ids"][:]]
        self._index = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def _layer(self, layer: int) -> h5py.Dataset:
        if layer not in self.layers:
            raise ConfigError(f"{self.path}: layer {layer} was not extracted; it has {self.layers}")
        return self.file[f"layers/{layer}"]

    def doc_rows(self, doc_id: str) -> slice:
        if doc_id not in self._index:
            raise KeyError(f"{self.path}: no document '{doc_id}'")
        i = self._index[doc_id]
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def read(self, layer: int, rows: slice) -> np.ndarray:
        """Token activations of rows `rows` as float32 (n, d)."""
        return decode_tokens(self._layer(layer)[rows], self.dtype)

    def doc(self, doc_id: str, layer: int) -> np.ndarray:
        return self.read(layer, self.doc_rows(doc_id))

    def token_ids(self, rows: slice | None = None) -> np.ndarray:
        return self.file["token_ids"][rows or slice(None)]

    def iter_docs(
        self, layer: int, docs_per_chunk: int = 256
    ) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
        """Yield (doc_ids, offsets relative to the chunk, activations) a chunk of docs at a time."""
        self._layer(layer)  # fail early on a layer that was not extracted
        for i in range(0, len(self.doc_ids), docs_per_chunk):
            j = min(i + docs_per_chunk, len(self.doc_ids))
            lo, hi = int(self.offsets[i]), int(self.offsets[j])
            yield self.doc_ids[i:j], self.offsets[i : j + 1] - lo, self.read(layer, slice(lo, hi))


def pooled_column(layer: int, pooling: str) -> str:
    return f"L{layer}_{pooling}"


class PooledWriter:
    """Pooled vectors per document: one Parquet row group per batch."""

    def __init__(self, path: Path, layers: list[int], poolings: list[str], d_model: int):
        self.columns = [pooled_column(layer, p) for layer in layers for p in poolings]
        fields = [pa.field("id", pa.string())]
        fields += [pa.field(c, pa.list_(pa.float32(), d_model)) for c in self.columns]
        self.schema = pa.schema(fields)
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def append(self, doc_ids: list[str], pooled: dict[str, np.ndarray]) -> None:
        arrays = [pa.array(doc_ids, pa.string())]
        for column in self.columns:
            values = np.ascontiguousarray(pooled[column], dtype=np.float32)
            flat = pa.array(values.reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, values.shape[1]))
        self.writer.write_batch(pa.record_batch(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


def read_pooled(path: str | Path, layer: int, pooling: str) -> tuple[list[str], np.ndarray]:
    """Document ids and an (n_docs, d) float32 matrix for one layer and pooling."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"pooled activations {path} do not exist; run extract first")
    column = pooled_column(layer, pooling)
    names = pq.read_schema(path).names
    if column not in names:
        have = [n for n in names if n != "id"]
        raise ConfigError(f"{path}: no pooled column '{column}'; it has {have}")
    df = pl.read_parquet(path, columns=["id", column])
    return df["id"].to_list(), df[column].to_numpy().astype(np.float32, copy=False)


def write_feature_file(
    path: Path,
    doc_ids: list[str],
    by_sae: dict[str, tuple[str, dict[str, sp.csr_matrix]]],
    task_docs: dict[str, int] | None = None,
) -> None:
    """features.h5 at `path`, atomically: per SAE name, its fingerprint and pooled codes,
    and how many of the task's texts it was fine-tuned on."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset(
            "doc_ids", data=np.asarray(doc_ids, dtype=object), dtype=h5py.string_dtype()
        )
        for sae_name, (fingerprint, features) in by_sae.items():
            write_features(h5, sae_name, fingerprint, features)
            h5.attrs[f"{sae_name}.task_docs"] = int((task_docs or {}).get(sae_name, 0))


def write_features(
    h5: h5py.File, sae_name: str, fingerprint: str, features: dict[str, sp.csr_matrix]
) -> None:
    h5.attrs[f"{sae_name}.fingerprint"] = fingerprint
    for pooling, matrix in features.items():
        group = h5.create_group(f"{sae_name}/{pooling}")
        group.attrs["shape"] = matrix.shape
        for key in ("data", "indices", "indptr"):
            group.create_dataset(key, data=getattr(matrix, key), compression="gzip")


class FeatureFile:
    """Read-only view of features.h5."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f"SAE features {self.path} do not exist; run the features stage")
        with h5py.File(self.path, "r") as h5:
            self.doc_ids = [s.decode() if isinstance(s, bytes) else s for s in h5["doc_ids"][:]]
            self.fingerprints = {
                k.removesuffix(".fingerprint"): str(v)
                for k, v in h5.attrs.items()
                if k.endswith(".fingerprint")
            }
            self.task_docs = {
                name: int(h5.attrs.get(f"{name}.task_docs", 0)) for name in self.fingerprints
            }

    def matrix(self, sae_name: str, pooling: str, expected_fingerprint: str | None = None):
        if sae_name not in self.fingerprints:
            raise ConfigError(
                f"{self.path}: no features of SAE '{sae_name}'; it has {sorted(self.fingerprints)}"
            )
        if expected_fingerprint and self.fingerprints[sae_name] != expected_fingerprint:
            raise ConfigError(
                f"{self.path}: features of '{sae_name}' come from another SAE "
                f"({self.fingerprints[sae_name]}) than the one on disk now "
                f"({expected_fingerprint}); rerun the features stage"
            )
        with h5py.File(self.path, "r") as h5:
            if f"{sae_name}/{pooling}" not in h5:
                raise ConfigError(f"{self.path}: no '{pooling}' pooling of '{sae_name}'")
            g = h5[f"{sae_name}/{pooling}"]
            return sp.csr_matrix(
                (g["data"][:], g["indices"][:], g["indptr"][:]), shape=tuple(g.attrs["shape"])
            )
