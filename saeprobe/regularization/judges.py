"""Judges that mark SAE latents unintended, each writing rows of one table:

    latent  decision ("unintended" | "intended")  judge  evidence (the judge's score)

concepts   a latent whose feature-card spans mostly fire on a user's keywords (a keyword
           match overlaps the activating token)
attribute  a latent that separates a nuisance or sensitive attribute (the `group` column)
           much better than it separates the task label
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse
from scipy.stats import rankdata

from saeprobe.config import AttributeJudgeConfig, ConceptJudgeConfig
from saeprobe.errors import ConfigError

DECISIONS = pl.Enum(["unintended", "intended"])
TABLE_SCHEMA = {
    "latent": pl.Int64,
    "decision": DECISIONS,
    "judge": pl.String,
    "evidence": pl.Float64,
    "detail": pl.String,
}


def _pattern(keywords: list[str]) -> re.Pattern:
    words = [re.escape(k.strip()) for k in keywords if k.strip()]
    if not words:
        raise ConfigError("a concept needs at least one non-empty keyword")
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class SpanWindow:
    """A span's text around its activating token: `text`, and where the token lies in it."""

    text: str
    token_start: int
    token_end: int


def span_window(context: str, window: int) -> SpanWindow:
    """The card's «token» with the `window` characters before it and the rest of the word
    it is part of (the marks removed)."""
    start, end = context.find("«"), context.find("»")
    if start < 0 or end < start:
        return SpanWindow(context, 0, len(context))
    left = context[max(0, start - window) : start]
    token = context[start + 1 : end]
    word_rest = re.match(r"\w*", context[end + 1 :]).group(0)
    return SpanWindow(left + token + word_rest, len(left), len(left) + len(token))


def fires_on(pattern: re.Pattern, span: SpanWindow) -> bool:
    """The latent fires on the concept: a keyword match overlaps the activating token. (A
    match merely nearby does not count: in short texts every token near a marker would.)"""
    return any(
        m.start() < span.token_end and m.end() > span.token_start
        for m in pattern.finditer(span.text)
    )


def concept_judge(cards: pl.DataFrame, cfg: ConceptJudgeConfig) -> pl.DataFrame:
    """Per latent with a card: the best concept's share of matching top spans."""
    if not cfg.keywords:
        raise ConfigError("the concepts judge needs at least one concept with keywords")
    patterns = {name: _pattern(words) for name, words in cfg.keywords.items()}
    windows = [span_window(c, cfg.window_chars) for c in cards["context"].to_list()]
    spans = cards.select("latent").with_columns(
        pl.Series(name, [fires_on(p, w) for w in windows], dtype=pl.Boolean)
        for name, p in patterns.items()
    )
    shares = spans.group_by("latent").agg(pl.col(list(patterns)).mean()).sort("latent")
    names = list(patterns)
    best = np.argmax(shares.select(names).to_numpy(), axis=1)
    share = shares.select(names).to_numpy().max(axis=1)
    return pl.DataFrame(
        {
            "latent": shares["latent"].cast(pl.Int64),
            "decision": np.where(share >= cfg.min_share, "unintended", "intended"),
            "judge": "concepts",
            "evidence": share,
            "detail": [f"concept {names[i]}" for i in best],
        },
        schema=TABLE_SCHEMA,
    )


def column_aucs(X, target: np.ndarray) -> np.ndarray:
    """ROC-AUC of every column of X as a score for the binary `target` (ties averaged)."""
    X = X.toarray() if sparse.issparse(X) else np.asarray(X)
    ranks = rankdata(X, axis=0)
    pos = target.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ConfigError("a column AUC needs both values of the target")
    return (ranks[pos].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def separation(X, values: np.ndarray) -> np.ndarray:
    """How well each latent separates `values`: the largest one-vs-rest |2 AUC - 1|."""
    classes = np.unique(values)
    if len(classes) < 2:
        raise ConfigError(f"separation needs two or more values; got {classes}")
    pairs = classes[1:] if len(classes) == 2 else classes
    return np.max([np.abs(2 * column_aucs(X, values == c) - 1) for c in pairs], axis=0)


def attribute_judge(
    X, labels: np.ndarray, group: np.ndarray, cfg: AttributeJudgeConfig
) -> pl.DataFrame:
    """Per latent: its separation of the attribute minus its separation of the label."""
    if group is None or len(np.unique(group)) < 2:
        raise ConfigError(
            "the attribute judge needs a 'group' column with two or more values in the "
            "training data"
        )
    attribute = separation(X, np.asarray(group))
    label = separation(X, np.asarray(labels))
    unintended = (attribute >= cfg.min_separation) & (attribute - label >= cfg.margin)
    return pl.DataFrame(
        {
            "latent": np.arange(len(attribute)),
            "decision": np.where(unintended, "unintended", "intended"),
            "judge": "attribute",
            "evidence": attribute - label,
            "detail": [
                f"attribute {a:.3f} label {b:.3f}" for a, b in zip(attribute, label, strict=True)
            ],
        },
        schema=TABLE_SCHEMA,
    )


def unintended_latents(table: pl.DataFrame, combine: str = "any") -> np.ndarray:
    """Latents marked unintended by any judge (`any`) or by every judge that saw them."""
    if combine not in ("any", "all"):
        raise ConfigError(f"unintended.combine must be 'any' or 'all'; got {combine!r}")
    marked = table.group_by("latent").agg(
        (pl.col("decision") == "unintended").any().alias("any"),
        (pl.col("decision") == "unintended").all().alias("all"),
    )
    return np.sort(marked.filter(pl.col(combine))["latent"].to_numpy())
