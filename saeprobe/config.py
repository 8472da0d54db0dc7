"""Typed views of params.yaml. Each dataclass mirrors one block; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from saeprobe.errors import ConfigError

T = TypeVar("T")

POOLINGS = ("mean", "max", "last", "first")
SOURCES = ("sae_probes", "bbc_news", "file", "huggingface")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "gemma3-270m"
    dtype: str = "bfloat16"
    device: str = "auto"
    cache_dir: str = "~/.cache/saeprobe"


@dataclass(frozen=True)
class ExtractConfig:
    layers: list[int] = field(default_factory=lambda: [6])
    max_length: int = 128
    batch_tokens: int = 4096
    max_batch_size: int = 64
    pooling: list[str] = field(default_factory=lambda: ["mean", "max", "last"])
    token_dtype: str = "bfloat16"


@dataclass(frozen=True)
class DatasetConfig:
    source: str
    task: str | None = None
    path: str | None = None
    hf_name: str | None = None
    hf_config: str | None = None
    hf_split: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    group_column: str | None = None
    domain_column: str | None = None
    split_column: str | None = None
    max_examples: int | None = None
    max_ood_examples: int | None = None
    test_size: float = 0.3


def parse(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass `cls` from a params mapping, naming `where` in every error."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params: '{where}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"params: unknown key(s) {unknown} in '{where}'; expected some of {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(value, hints[name], f"{where}.{name}")
    try:
        return cls(**values)
    except TypeError as exc:
        missing = [n for n, f in fields.items() if _required(f) and n not in raw]
        raise ConfigError(f"params: '{where}' is missing required key(s) {missing}") from exc


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"params: '{where}' must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"params: '{where}' must be a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not _is_exact(value, hint):
        raise ConfigError(f"params: '{where}' must be {hint.__name__}, got {value!r}")
    return value


def _is_exact(value: Any, hint: type) -> bool:
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params file {path} does not exist")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"params file {path} must hold a mapping at the top level")
    return params


def dataset_config(params: dict[str, Any], name: str) -> DatasetConfig:
    datasets = params.get("datasets") or {}
    if name not in datasets:
        raise ConfigError(
            f"params: no data set named '{name}' under 'datasets'; known: {sorted(datasets)}"
        )
    cfg = parse(DatasetConfig, datasets[name], f"datasets.{name}")
    validate_dataset(cfg, f"datasets.{name}")
    return cfg


def validate_dataset(cfg: DatasetConfig, where: str) -> None:
    if cfg.source not in SOURCES:
        raise ConfigError(f"params: '{where}.source' is '{cfg.source}'; expected one of {SOURCES}")
    if not 0.0 < cfg.test_size < 1.0:
        raise ConfigError(f"params: '{where}.test_size' must lie in (0, 1), got {cfg.test_size}")
    for key in ("max_examples", "max_ood_examples"):
        value = getattr(cfg, key)
        if value is not None and value < 4:
            raise ConfigError(f"params: '{where}.{key}' must be at least 4, got {value}")


def model_config(params: dict[str, Any]) -> ModelConfig:
    return parse(ModelConfig, params.get("model"), "model")


def extract_config(params: dict[str, Any]) -> ExtractConfig:
    cfg = parse(ExtractConfig, params.get("extract"), "extract")
    bad = [p for p in cfg.pooling if p not in POOLINGS]
    if bad:
        raise ConfigError(f"params: 'extract.pooling' has {bad}; expected some of {POOLINGS}")
    if not cfg.layers:
        raise ConfigError("params: 'extract.layers' must name at least one layer")
    if cfg.token_dtype not in ("bfloat16", "float16", "float32"):
        raise ConfigError(
            f"params: 'extract.token_dtype' is '{cfg.token_dtype}'; "
            "expected bfloat16, float16 or float32"
        )
    if cfg.max_length < 2 or cfg.batch_tokens < cfg.max_length:
        raise ConfigError(
            "params: 'extract.max_length' must be >= 2 and 'extract.batch_tokens' >= max_length"
        )
    return cfg


def seed(params: dict[str, Any]) -> int:
    value = params.get("seed", 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"params: 'seed' must be an integer, got {value!r}")
    return value


def corpus_config(params: dict[str, Any]):
    from saeprobe.data.corpus import CorpusConfig

    cfg = parse(CorpusConfig, params.get("corpus"), "corpus")
    if not cfg.tasks:
        raise ConfigError("params: 'corpus.tasks' must name at least one sae-probes task")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise ConfigError(
            f"params: 'corpus.eval_fraction' must lie in [0, 1), got {cfg.eval_fraction}"
        )
    return cfg


def sae_train_config(params: dict[str, Any]):
    from saeprobe.sae.train import SAETrainConfig

    cfg = parse(SAETrainConfig, params.get("sae"), "sae")
    if cfg.architecture not in ("topk", "relu"):
        raise ConfigError(
            f"params: 'sae.architecture' is '{cfg.architecture}'; expected topk or relu"
        )
    if cfg.expansion < 1 or cfg.batch_size < 1 or cfg.train_tokens < cfg.batch_size:
        raise ConfigError(
            "params: 'sae.expansion', 'sae.batch_size' >= 1 and 'sae.train_tokens' >= batch_size"
        )
    return cfg


def finetune_config(params: dict[str, Any]):
    from saeprobe.sae.finetune import FinetuneConfig

    return parse(FinetuneConfig, params.get("finetune"), "finetune")


@dataclass(frozen=True)
class SAEEvalConfig:
    ce_docs: int = 32  # documents for the spliced-in LM loss (causal models only)
    card_top: int = 8  # top activating token spans kept per latent
    card_context_chars: int = 60


def sae_eval_config(params: dict[str, Any]) -> SAEEvalConfig:
    return parse(SAEEvalConfig, params.get("sae_eval"), "sae_eval")


@dataclass(frozen=True)
class FeaturesConfig:
    saes: list[str] = field(default_factory=lambda: ["pretrained", "finetuned"])
    pooling: list[str] = field(default_factory=lambda: ["mean", "max", "sum", "last", "topn"])
    top_n: int = 4  # MOSAIC's top-n count pooling
    binarize_threshold: float | None = 1.0  # probes also see features > threshold; null: off


def features_config(params: dict[str, Any]) -> FeaturesConfig:
    from saeprobe.features import FEATURE_POOLINGS

    cfg = parse(FeaturesConfig, params.get("features"), "features")
    bad = [p for p in cfg.pooling if p not in FEATURE_POOLINGS]
    if bad:
        raise ConfigError(f"params: 'features.pooling' has {bad}; expected {FEATURE_POOLINGS}")
    bad = [s for s in cfg.saes if s not in ("pretrained", "finetuned")]
    if bad:
        raise ConfigError(f"params: 'features.saes' has {bad}; expected pretrained, finetuned")
    return cfg


def probe_config(params: dict[str, Any]):
    from saeprobe.probes.methods import ProbeConfig

    cfg = parse(ProbeConfig, params.get("probe"), "probe")
    features = features_config(params)
    if cfg.sae_pooling not in features.pooling:
        raise ConfigError(
            f"params: 'probe.sae_pooling' is '{cfg.sae_pooling}', which "
            f"'features.pooling' {features.pooling} does not compute"
        )
    missing = [s for s in cfg.saes if s not in features.saes]
    if missing:
        raise ConfigError(f"params: 'probe.saes' has {missing}, not in 'features.saes'")
    return cfg


def regime_configs(params: dict[str, Any]):
    from saeprobe.regimes import REGIMES, RegimeConfig

    raw = params.get("regimes") or {}
    unknown = sorted(set(raw) - set(REGIMES))
    if unknown:
        raise ConfigError(f"params: unknown regime(s) {unknown}; expected some of {REGIMES}")
    return {name: parse(RegimeConfig, raw[name], f"regimes.{name}") for name in raw}
