"""The one table every data source becomes, and its validation."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from saeprobe.errors import ConfigError

SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "text": pl.String(),
    "label": pl.Int64(),
    "label_name": pl.String(),
    "split": pl.String(),
    "group": pl.String(),
    "domain": pl.String(),
}
SPLITS = ("train", "test", "ood")


def validate(df: pl.DataFrame, where: str) -> pl.DataFrame:
    """Check a prepared table against SCHEMA; return it with columns in schema order."""
    missing = [c for c in SCHEMA if c not in df.columns]
    if missing:
        raise ConfigError(f"{where}: missing column(s) {missing}; expected {list(SCHEMA)}")
    df = df.select([pl.col(c).cast(t) for c, t in SCHEMA.items()])
    bad_splits = set(df["split"].unique().to_list()) - set(SPLITS)
    if bad_splits:
        raise ConfigError(f"{where}: column 'split' has {sorted(bad_splits)}; expected {SPLITS}")
    if df["id"].n_unique() != df.height:
        raise ConfigError(f"{where}: column 'id' has duplicate values")
    return df


def read_prepared(path: str | Path) -> pl.DataFrame:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"prepared data set {path} does not exist; run the prepare stage first")
    return validate(pl.read_parquet(path), str(path))
