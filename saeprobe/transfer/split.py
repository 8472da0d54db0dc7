"""The transfer target: which rows of the other data set a probe is tested on, with their
labels written in the source's label indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from saeprobe.config import TransferPairConfig
from saeprobe.errors import ConfigError


@dataclass
class TransferTarget:
    """The rows of the target data set a probe is tested on, with their labels written as
    the source's label indices, and how many rows were left out for sharing a text with
    the source."""

    rows: np.ndarray
    labels: np.ndarray
    overlap_dropped: int


def source_name(pair: TransferPairConfig) -> str:
    """The source as the results table names its test set: `sst2`, or `reviews:en`."""
    return pair.train + (f":{pair.train_domain}" if pair.train_domain is not None else "")


def target_name(pair: TransferPairConfig) -> str:
    """The target as the results table names it: `movies`, `living_room:ood`, `reviews:fr`."""
    name = pair.test + (":ood" if pair.test_split == "ood" else "")
    return name + (f":{pair.test_domain}" if pair.test_domain is not None else "")


def normalized(text: str) -> str:
    """A text as compared for overlap: case and runs of white space do not count."""
    return " ".join(text.split()).casefold()


def label_map(
    source: pl.DataFrame, target: pl.DataFrame, pair: TransferPairConfig, where: str
) -> dict[str, int]:
    """Target label name -> source label index. `pair.labels` maps target names to source
    names (names it leaves out are dropped); without it the names must match."""
    source_index = dict(zip(source["label_name"], source["label"], strict=True))
    target_names = sorted(set(target["label_name"].to_list()))
    mapping = pair.labels or {name: name for name in target_names}
    unknown = sorted(set(mapping) - set(target_names))
    if unknown:
        raise ConfigError(
            f"params: '{where}.labels' maps {unknown}, which are not labels of data set "
            f"'{pair.test}' (it has {target_names})"
        )
    foreign = sorted({v for v in mapping.values() if v not in source_index})
    if foreign:
        what = f"'{where}.labels' maps to" if pair.labels else f"data set '{pair.test}' has"
        raise ConfigError(
            f"params: {what} {foreign}, which are not labels of data set '{pair.train}' "
            f"(it has {sorted(source_index)}); map the target's labels onto the source's "
            f"with '{where}.labels'"
        )
    return {name: int(source_index[value]) for name, value in mapping.items()}


NEAR_DUPLICATE_CHARS = 40  # a text this long inside another counts as the same text


def transfer_target(
    source: pl.DataFrame, target: pl.DataFrame, pair: TransferPairConfig, where: str
) -> TransferTarget:
    """The target rows to test on: the rows of `pair.test_split` and `pair.test_domain`
    whose label the mapping keeps and that share no text with the source's in-distribution
    rows (of its training domain): neither the same text (case and white space aside) nor
    one that contains the other, when the shorter has at least NEAR_DUPLICATE_CHARS
    characters (phrase-level copies, as SST-2's phrases in other SST-derived sets).

    In-distribution targets of another data set take its train and test split alike, since
    no probe trains on them. A domain of the source's own data set takes its test split
    only: the SAE fine-tuned on the source read every domain's training texts."""
    mapping = label_map(source, target, pair, where)
    source = source.filter(pl.col("split") != "ood")  # a probe never sees the shifted rows
    if pair.train_domain is not None:
        source = source.filter(pl.col("domain") == pair.train_domain)
    seen = {normalized(t) for t in source["text"].to_list()}
    long_seen = [t for t in seen if len(t) >= NEAR_DUPLICATE_CHARS]
    names = target["label_name"].to_list()
    texts = target["text"].to_list()
    splits = target["split"].to_list()
    domains = target["domain"].to_list()
    want_ood = pair.test_split == "ood"
    own_domain = pair.train == pair.test and not want_ood
    kept, dropped = [], 0
    for i, (name, text, split, domain) in enumerate(
        zip(names, texts, splits, domains, strict=True)
    ):
        if (split == "ood") != want_ood or name not in mapping:
            continue
        if pair.test_domain is not None and domain != pair.test_domain:
            continue
        if own_domain and split != "test":
            continue
        if shares_text(normalized(text), seen, long_seen):
            dropped += 1
            continue
        kept.append(i)
    rows = np.asarray(kept, dtype=np.int64)
    labels = np.asarray([mapping[names[i]] for i in kept], dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise ConfigError(
            f"params: '{where}': data set '{pair.test}' keeps {len(rows)} row(s) of "
            f"{len(np.unique(labels))} class(es) in its {pair.test_split} rows"
            + (f" of domain '{pair.test_domain}'" if pair.test_domain is not None else "")
            + " after label mapping and overlap removal; a transfer test needs two classes"
        )
    return TransferTarget(rows, labels, dropped)


def shares_text(text: str, seen: set[str], long_seen: list[str]) -> bool:
    """`text` is a source text, contains a long one, or is a long part of one."""
    if text in seen:
        return True
    if any(s in text for s in long_seen):
        return True
    return len(text) >= NEAR_DUPLICATE_CHARS and any(text in s for s in long_seen)
