"""Typed views of params.yaml: one dataclass per section, documented per field, validated here.

The defaults below are the defaults of params.yaml (a test keeps the two equal), so a
benchmark or test that builds a config in code runs what the pipeline runs. A stage reads
params through the `*_config` functions, which are strict: every key of a section must be
spelled in params.yaml (no silent fall-back on a default), unknown keys are errors with a
suggestion, and names (methods, regimes, poolings) are checked against their registries.

This module imports nothing from the rest of the package but `errors`, so every stage can
depend on it without depending on the domain code.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from saeprobe.errors import ConfigError

T = TypeVar("T")

# Registries of names that params may use; the domain modules key their implementations by
# these names (the probe registry checks at import that it implements exactly these).
SOURCES = ("sae_probes", "bbc_news", "file", "huggingface", "sae_probes_attribute")
POOLINGS = ("mean", "max", "last", "first")
TOKEN_DTYPES = ("bfloat16", "float16", "float32")
TRAINABLE_ARCHITECTURES = ("topk", "relu")
SAE_LOSSES = ("fvu", "per_token")
FEATURE_SAES = ("pretrained", "finetuned")
FEATURE_POOLINGS = ("mean", "max", "sum", "last", "topn")
DENSE_POOLINGS = ("mean", "max", "sum", "last")  # topn is MOSAIC's, probed by its own methods
HIDDEN_METHODS = ("logreg_l2", "logreg_l1", "pca", "knn", "xgboost", "mlp", "tree")
TEXT_METHODS = ("tfidf",)
SAE_METHODS = ("sae_topk", "sae_topk_bin", "sae_l1")
L1_SOLVERS = ("saga", "liblinear", "path")
L2_SOLVERS = ("lbfgs", "batch")
PROBE_BACKENDS = ("loky", "dask")
MOSAIC_METHODS = ("mosaic_linear", "mosaic_tree")  # on binarized top-n counts
PAPER_BASELINES = ("logreg_l2", "pca", "knn", "xgboost", "mlp")  # the sparse-probing quiver
REGIMES = ("normal", "scarcity", "imbalance", "noise", "shift")
# The keys of each searched method's space in probe.grids, by the kind of search:
# `log` grids are the sparse-probing reference's log2-spaced integers up to a cap, `draws`
# are seeded random draws (`trials` of them) from lists, `product` is a grid of lists (or
# a list of points).
GRID_KEYS = {
    "pca": ("max_components", "points"),
    "knn": ("max_neighbors", "points"),
    "xgboost": (
        "trials",
        "n_estimators",
        "max_depth",
        "learning_rate",
        "subsample",
        "colsample_bytree",
        "reg_alpha",
        "reg_lambda",
        "min_child_weight",
    ),
    "mlp": ("trials", "hidden_layer_sizes", "learning_rate_init", "alpha"),
    "tree": ("max_depth",),
    "tfidf": ("C",),
    "mosaic_linear": ("C", "penalty"),
    "mosaic_tree": ("max_depth", "min_samples_split", "min_samples_leaf"),
}
GRID_KIND = {"pca": "log", "knn": "log", "xgboost": "draws", "mlp": "draws"}  # else product
# The folders of user-supplied inputs. Stages that may read them depend on the whole folder
# (DVC cannot declare a dependency that only some data sets have), so an input outside them
# would go untracked: the config refuses it.
DATA_INPUTS = "data/raw"  # files of `source: file` and `huggingface` data sets saved to disk
SAE_INPUTS = "data/published"  # published SAEs named in sae.pretrained
RESERVED_NAMES = ("pretrained", "corpus")  # output paths use them beside data set names
SECTIONS = (
    "seed",
    "model",
    "extract",
    "datasets",
    "corpus",
    "sae",
    "finetune",
    "sae_eval",
    "features",
    "probe",
    "probe_report",
    "regimes",
    "probe_datasets",
    "finetune_datasets",
    "unintended",
    "selfreg",
    "transfer",
    "multitoken",
    "cross_model",
    "benchmark",
)
JUDGES = ("concepts", "attribute", "llm")
COMBINE = ("any", "all")
# The self-regularized classifier and its ablations: (remove the unintended latents,
# penalize the weight's alignment with them). Every other selfreg method is the plain
# classifier with the overrides that `selfreg.baselines` gives it ("plain": none).
SELFREG_METHODS = ("selfreg", "selfreg_removal", "selfreg_penalty")


def optional(default: Any = None, factory: Any = None) -> Any:
    """A field that params.yaml may leave out (the default applies)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"optional": True})
    return field(default=default, metadata={"optional": True})


@dataclass(frozen=True)
class ModelConfig:
    name: str = "gemma3-270m"  # an alias (gemma3-270m, smollm2-135m, minilm), a folder, a hub id
    dtype: str = "bfloat16"  # weights and activations in the forward pass
    device: str = "auto"  # auto: cuda when present, else cpu
    cache_dir: str = "~/.cache/saeprobe"  # the dequantized Gemma copy ($SAEPROBE_CACHE wins)


@dataclass(frozen=True)
class ExtractConfig:
    layers: list[int] = field(default_factory=lambda: [6])  # hidden_states indices
    max_length: int = 128  # tokens per document, BOS included; longer texts are truncated
    batch_tokens: int = 4096  # padded tokens per forward pass
    max_batch_size: int = 64
    pooling: list[str] = field(default_factory=lambda: ["mean", "max", "last"])
    token_dtype: str = "bfloat16"  # token activations on disk (bfloat16 keeps bf16 bits)


@dataclass(frozen=True)
class DatasetConfig:
    source: str  # one of SOURCES
    task: str | None = optional()  # sae_probes: task name, full or short
    path: str | None = optional()  # file: CSV, TSV, Parquet or JSONL; huggingface: save_to_disk
    hf_name: str | None = optional()
    hf_config: str | None = optional()
    hf_split: str | None = optional()
    text_column: str = optional("text")
    label_column: str = optional("label")
    group_column: str | None = optional()  # a sensitive attribute
    domain_column: str | None = optional()
    split_column: str | None = optional()  # train / test / ood per row
    max_examples: int | None = optional()  # stratified cap on train + test
    max_ood_examples: int | None = optional()
    test_size: float = optional(0.3)
    # Self-regularization benchmarks. sae_probes_attribute: `task` joined with
    # `attribute_task` on the item, the attribute as `group`; training skewed so that the
    # attribute agrees with the label at `skew`, test_per_cell test items per (label,
    # attribute) cell.
    attribute_task: str | None = optional()
    skew: float = optional(0.9)
    test_per_cell: int = optional(50)
    # A spurious cue on any binary data set: `cue_marker` added (prefix or suffix) to
    # cue_rate of label 1's and 1 - cue_rate of label 0's training texts, to half of each
    # label's test texts; `group` records it.
    cue_marker: str | None = optional()
    cue_rate: float = optional(0.95)
    cue_position: str = optional("suffix")


@dataclass(frozen=True)
class CorpusConfig:
    tasks: list[str] = field(
        default_factory=lambda: [
            "161_agnews_0",
            "111_yelp_data",
            "88_glue_mnli",
            "91_glue_qqp",
            "102_twt_emotion",
            "36_sciq_tf",
        ]
    )  # sparse-probing benchmark tasks whose texts pretrain the SAEs
    max_texts_per_task: int = 600
    eval_fraction: float = 0.1  # held-out texts for SAE evaluation (split "test")


@dataclass(frozen=True)
class SAETrainConfig:
    architecture: str = "topk"  # one of TRAINABLE_ARCHITECTURES
    expansion: int = 8  # width = expansion * model width
    k: int = 32
    k_start: int | None = 128  # k is annealed linearly from k_start to k; null: no annealing
    k_anneal_fraction: float = 0.1  # ... over this share of training
    tied: bool = False
    l1_coefficient: float = 5.0  # relu only
    aux_k: int = 256  # AuxK loss on latents dead for dead_tokens (topk only; 0: off)
    aux_coefficient: float = 0.03125
    dead_tokens: int = 100_000
    lr: float = 5e-4
    warmup_fraction: float = 0.05
    decay_fraction: float = 0.2
    batch_size: int = 1024
    train_tokens: int = 400_000
    buffer_tokens: int = 65_536
    normalize: bool = True  # scale inputs to mean norm sqrt(width); saved with the SAE
    loss: str = "fvu"  # fvu (over the batch) or per_token (the self-regularization code's)
    pretrained: dict[str, str] = field(default_factory=dict)  # layer -> published SAE on disk


@dataclass(frozen=True)
class FinetuneConfig:
    lr: float = 5e-5  # the self-regularization code's learning rate and epochs
    epochs: int = 5
    batch_size: int = 1024
    dead_weight: float = 0.1  # weight of the dead latents' residual loss
    buffer_tokens: int = 65_536
    # The task's unlabeled training-split texts fine-tuning reads: all of them (null), as
    # the paper does, or a seeded sample of at most this many. Probe results record the
    # count (sae_task_docs), since probes in the scarcity regime see fewer labeled texts.
    max_docs: int | None = None


@dataclass(frozen=True)
class SAEEvalConfig:
    ce_docs: int = 8  # documents for the spliced-in LM loss (causal models only)
    card_top: int = 8  # top activating token spans kept per latent
    card_context_chars: int = 60


@dataclass(frozen=True)
class FeaturesConfig:
    saes: list[str] = field(default_factory=lambda: list(FEATURE_SAES))
    pooling: list[str] = field(default_factory=lambda: list(FEATURE_POOLINGS))
    top_n: list[int] = field(default_factory=lambda: [20, 50])  # MOSAIC's top-n counts


def _default_grids() -> dict[str, Any]:
    """The sparse-probing reference's search spaces (sae_probes.utils_training.find_best_*)."""
    return {
        "pca": {"max_components": 100, "points": 10},
        "knn": {"max_neighbors": 100, "points": 10},
        "xgboost": {
            "trials": 3,
            "n_estimators": [50, 100, 150, 200, 250],
            "max_depth": [2, 3, 4, 5],
            "learning_rate": [
                0.001, 0.00166810, 0.00278256, 0.00464159, 0.00774264,
                0.0129155, 0.0215443, 0.0359381, 0.0599484, 0.1,
            ],
            "subsample": [0.7, 0.775, 0.85, 0.925, 1.0],
            "colsample_bytree": [0.7, 0.775, 0.85, 0.925, 1.0],
            "reg_alpha": [
                0.001, 0.00278256, 0.00774264, 0.0215443, 0.0599484,
                0.166810, 0.464159, 1.29155, 3.59381, 10.0,
            ],
            "reg_lambda": [
                0.001, 0.00278256, 0.00774264, 0.0215443, 0.0599484,
                0.166810, 0.464159, 1.29155, 3.59381, 10.0,
            ],
            "min_child_weight": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        },
        "mlp": {
            "trials": 1,
            "hidden_layer_sizes": [
                [16], [32], [64], [16, 16], [32, 32], [64, 64],
                [16, 16, 16], [32, 32, 32], [64, 64, 64],
            ],
            "learning_rate_init": [0.0001, 0.000316228, 0.001, 0.00316228, 0.01],
            "alpha": [0.00001, 0.0000562341, 0.000316228, 0.00177828, 0.01],
        },
        "tree": {"max_depth": [2, 4, 8, 16, None]},
        "tfidf": {"C": [0.1, 1.0, 10.0, 100.0]},
        "mosaic_linear": {"C": [0.1, 1.0], "penalty": ["l1", "l2"]},
        "mosaic_tree": {
            "max_depth": [3, 5], "min_samples_split": [2, 5], "min_samples_leaf": [1, 2],
        },
    }  # fmt: skip


@dataclass(frozen=True)
class ProbeConfig:
    n_jobs: int = -1  # joblib workers; -1: one per core (with dask: every worker's threads)
    # Where the fits run: loky, processes on this machine; dask, the workers of the Dask
    # cluster whose scheduler listens at `scheduler` (tcp://host:port). Results are the same.
    backend: str = "loky"
    scheduler: str | None = None
    c_log10_range: list[float] = field(default_factory=lambda: [-5.0, 5.0])  # logistic C grid
    c_grid_size: int = 10
    # L1 fits (logreg_l1, sae_l1, the top-k probes): path, every C, fold and class in one
    # batched solve of the problem the reference's 1,000 epochs of saga reach
    # (probes/path.py); saga, the reference's own fits; liblinear, the L1 optimum itself.
    l1_solver: str = "path"
    # L2 fits (logreg_l2): batch, every C, fold and class as one batched run of the
    # reference's lbfgs (probes/lbfgs.py); lbfgs, one scikit-learn fit each, as the reference.
    l2_solver: str = "batch"
    sae_k: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128])
    hidden_pooling: str = "last"  # one of extract.pooling; the paper probes the last token
    sae_pooling: str = "last"  # one of features.pooling but topn
    # The normal regime also probes these poolings with compare_methods, side by side.
    compare_poolings: list[str] = field(default_factory=lambda: ["mean", "max"])
    compare_methods: list[str] = field(default_factory=lambda: ["logreg_l2", "sae_topk"])
    saes: list[str] = field(default_factory=lambda: list(FEATURE_SAES))
    binarize_threshold: float = 1.0  # sae_topk_bin: the kept latents binarized > this
    baselines: list[str] = field(default_factory=lambda: list(HIDDEN_METHODS + TEXT_METHODS))
    sae_methods: list[str] = field(default_factory=lambda: list(SAE_METHODS))
    # MOSAIC's setting, normal regime: top-n counts (n of features.top_n) binarized
    # (> each threshold), probed with its classifiers over all latents.
    mosaic_methods: list[str] = field(default_factory=lambda: list(MOSAIC_METHODS))
    mosaic_top_n: list[int] = field(default_factory=lambda: [20, 50])
    mosaic_thresholds: list[float] = field(default_factory=lambda: [0.0, 1.0])
    # Search spaces of the searched methods (see GRID_KEYS for the kinds of search).
    grids: dict[str, Any] = field(default_factory=_default_grids)
    allow_failures: bool = False  # true: a fit that raises is recorded as failed, not fatal

    @property
    def Cs(self) -> list[float]:
        lo, hi = self.c_log10_range
        # Spaced from high to low as the reference's np.logspace(5, -5, 10): the same floats
        # to the last bit, since lbfgs on unscaled activations stops at visibly different
        # points for C values one ulp apart.
        return [float(c) for c in np.logspace(hi, lo, self.c_grid_size)[::-1]]


@dataclass(frozen=True)
class ProbeReportConfig:
    bootstrap: int = 1000  # bootstrap resamples of the 95% intervals
    # The sparse-probing paper's quiver and best-vs-best comparison: one layer, its five
    # baselines on hidden states and the top-k SAE probes with these k.
    quiver_layer: int = 6
    quiver_baselines: list[str] = field(default_factory=lambda: list(PAPER_BASELINES))
    quiver_sae_k: list[int] = field(default_factory=lambda: [16, 128])
    quiver_saes: list[str] = field(default_factory=lambda: ["pretrained"])


@dataclass(frozen=True)
class RegimeConfig:
    seeds: int = 3
    levels: list[float] = optional(factory=list)  # sizes, positive shares or flip shares
    max_train: int = optional(1024)  # normal, noise and shift: balanced, at most this many
    # imbalance: at most this many training examples; the size is the largest that both
    # extreme shares can fill, the same at every share.
    train_size: int = optional(1024)
    methods: list[str] | None = optional()  # None: every configured method
    layers: list[int] | None = optional()  # None: every extracted layer
    sae_k: list[int] | None = optional()  # the top-k probe's k here; None: probe.sae_k
    datasets: list[str] | None = optional()  # None: every data set of probe_datasets


@dataclass(frozen=True)
class ConceptJudgeConfig:
    """unintended.benchmarks.<data set>.judges.concepts"""

    keywords: dict[str, list[str]]  # concept -> keywords or phrases (case-insensitive)
    min_share: float = 0.5  # share of a latent's top spans that must match one concept
    window_chars: int = 20  # characters around the span's token that a match may use


@dataclass(frozen=True)
class AttributeJudgeConfig:
    """unintended.benchmarks.<data set>.judges.attribute"""

    min_separation: float = 0.2  # |2 AUC - 1| on the attribute at least this ...
    margin: float = 0.1  # ... and this much above the latent's separation of the label


@dataclass(frozen=True)
class LLMTaskConfig:
    """unintended.benchmarks.<data set>.judges.llm"""

    task: str  # what the classifier must decide, in a sentence


@dataclass(frozen=True)
class JudgesConfig:
    """The judges of one data set; a judge left out is not used."""

    concepts: ConceptJudgeConfig | None = optional()
    attribute: AttributeJudgeConfig | None = optional()
    llm: LLMTaskConfig | None = optional()


@dataclass(frozen=True)
class LLMEndpointConfig:
    """unintended.llm: an OpenAI-compatible chat endpoint (null base_url: none)."""

    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable
    spans: int = 10  # top spans per latent (the reference: 10)
    span_chars: int = 60  # characters of each span, ending at the activating token
    timeout_s: float = 60.0


@dataclass(frozen=True)
class ClassifierConfig:
    """selfreg.classifier, and the regularizers a baseline sets (all off by default)."""

    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW's decoupled decay (the reference: 0)
    batch_size: int = 64
    max_epochs: int = 50
    val_fraction: float = 0.2
    patience: int = 3  # epochs without a better validation F1 before the lr halves ...
    lr_decay: float = 0.5
    max_decays: int = 2  # ... at most this often; then training stops
    l2: float = optional(0.0)  # coefficient of the sum of the parameters' L2 norms
    dropout: float = optional(0.0)  # on the inputs
    focal_gamma: float = optional(0.0)  # focal loss (0: cross-entropy)
    label_smoothing: float = optional(0.0)
    spectral: float = optional(0.0)  # coefficient of the weight's largest singular value


def default_baselines() -> dict[str, dict[str, float]]:
    """The regularized baselines at the self-regularization code's settings."""
    return {
        "plain": {},
        "l2": {"l2": 1e-3},
        "dropout": {"dropout": 0.1},
        "focal": {"focal_gamma": 2.0},
        "label_smoothing": {"label_smoothing": 0.1},
        "spectral": {"spectral": 0.02},
    }


@dataclass(frozen=True)
class UnintendedConfig:
    layers: list[int]  # SAE layers whose latents are judged (each one of extract.layers)
    combine: str = "any"  # unintended when any judge (or every judge that saw it) says so
    llm: LLMEndpointConfig = field(default_factory=LLMEndpointConfig)
    benchmarks: dict[str, JudgesConfig] = field(default_factory=dict)  # data set -> judges


@dataclass(frozen=True)
class SelfRegConfig:
    pooling: str = "last"  # the classifier's inputs: pooled hidden states (the paper: last)
    seeds: int = 3
    methods: list[str] = field(default_factory=lambda: [*default_baselines(), *SELFREG_METHODS])
    lambdas: list[float] = field(default_factory=lambda: [1.0, 3.0, 10.0, 31.0])
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    # name -> overrides of the classifier's regularizers; "plain" (none) is the reference
    # every method is tested against
    baselines: dict[str, dict[str, float]] = field(default_factory=default_baselines)


MULTITOKEN_METHODS = ("attention", "concat_pca")


@dataclass(frozen=True)
class AttentionProbeConfig:
    lr: float = 0.0001  # Adam, full batch (the paper's train_attn_probing)
    steps: int = 1000
    val_fraction: float = 0.2  # of the training set; the best validation AUC's step is kept
    l2: float = 0.0  # on the attention and output vectors


@dataclass(frozen=True)
class MultiTokenConfig:
    # binary data sets of `datasets` (the paper's multi-token runs are binary)
    datasets: list[str] = field(default_factory=lambda: ["sentiment"])
    layers: list[int] = field(default_factory=lambda: [6])  # each one of extract.layers
    methods: list[str] = field(default_factory=lambda: list(MULTITOKEN_METHODS))
    attention: AttentionProbeConfig = field(default_factory=AttentionProbeConfig)
    # concat_pca: a PCA per token position (the first content tokens), joined, L1 probe
    concat_components: int = 20
    concat_positions: int | None = None  # null: every position the extraction kept


BENCHMARK_METHODS = HIDDEN_METHODS + TEXT_METHODS + SAE_METHODS


@dataclass(frozen=True)
class BenchmarkConfig:
    """The sparse-probing paper's whole benchmark, one stage per task (benchmark@<task>):
    each task prepared as a `sae_probes` data set, its hidden states and pretrained-SAE codes
    at `layer` computed in memory, and probed under `probe` in `regimes`."""

    tasks: list[str] = field(default_factory=list)  # params-benchmark.yaml: all 113 binary
    layer: int = 6  # one of extract.layers (its pretrained SAE)
    max_examples: int | None = 1000  # stratified cap on each task's train + test
    max_ood_examples: int | None = 300
    # the paper's baselines and its top-k SAE probe (sae_topk, at regimes.<regime>.sae_k)
    methods: list[str] = field(
        default_factory=lambda: ["logreg_l2", "pca", "knn", "xgboost", "mlp", "sae_topk"]
    )
    regimes: list[str] = field(default_factory=lambda: list(REGIMES))


# What one task's stage reads (not the task list: adding a task reruns no other task).
BENCHMARK_TASK_KEYS = ("layer", "max_examples", "max_ood_examples", "methods", "regimes")


TRANSFER_SPLITS = ("in_distribution", "ood")
TRANSFER_EXTRA_METHODS = ("mosaic_lr_c1",)  # MOSAIC's cross-lingual classifier (C = 1)


@dataclass(frozen=True)
class TransferPairConfig:
    train: str  # the data set every probe is trained on
    test: str  # the data set it is then tested on, unchanged
    # target label name -> source label name; target labels it leaves out are dropped.
    # Empty: the two data sets' label names must agree.
    labels: dict[str, str] = optional(factory=dict)
    # Which rows of `test`: in_distribution (its train and test splits) or ood (its shifted
    # split, e.g. the benchmark's translations; then `test` may be `train` itself).
    test_split: str = optional("in_distribution")
    # Only rows of this `domain` (e.g. a language): of `train` for training and its
    # in-distribution test, of `test` for the transfer test. null: every row.
    train_domain: str | None = optional()
    test_domain: str | None = optional()


def default_transfer_pairs() -> dict[str, TransferPairConfig]:
    return {
        "sentiment-movies": TransferPairConfig("sentiment", "movie_sentiment"),
        "toxicity-hate": TransferPairConfig("toxicity", "hate_speech"),
        "living_room-french": TransferPairConfig("living_room", "living_room", test_split="ood"),
        "grammar-ood": TransferPairConfig("grammar", "grammar", test_split="ood"),
    }


@dataclass(frozen=True)
class TransferConfig:
    pairs: dict[str, TransferPairConfig] = field(default_factory=default_transfer_pairs)
    seeds: int = 2  # each seed draws its own training sample from the source
    max_train: int = 256  # training examples per seed, class-balanced
    saes: list[str] = field(default_factory=lambda: ["pretrained", "finetuned"])
    sae_k: list[int] = field(default_factory=lambda: [16, 128])
    methods: list[str] = field(
        default_factory=lambda: [
            "logreg_l2",
            "pca",
            "knn",
            "xgboost",
            "mlp",
            "sae_topk",
            "sae_topk_bin",
            "mosaic_linear",
            "mosaic_lr_c1",
            "tfidf",
        ]
    )


def default_answers() -> dict[str, str]:
    return {"1": "True", "0": "False", "correct": "True", "incorrect": "False"}


@dataclass(frozen=True)
class CrossModelConfig:
    """MOSAIC's cross-model setting: a second model answers each item of true/false data
    sets; probes on the main model's representations predict whether it answers right."""

    # float32: the answer is an argmax between two logits, which bfloat16 would often tie
    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(name="smollm2-135m", dtype="float32")
    )
    datasets: list[str] = field(default_factory=lambda: ["truthqa_tf"])
    # The user turn of the second model's chat template; {text} is the item.
    prompt: str = "{text}\n\nIs the answer A correct? Answer True or False."
    # label name of the data set -> the word a correct answer starts with
    answers: dict[str, str] = field(default_factory=default_answers)
    # the second model's hidden states (at the prompt's last token) for its own probe
    layers: list[int] = field(default_factory=lambda: [15])
    max_length: int = 256  # item tokens; a longer item keeps its last ones (the answer)
    batch_size: int = 16


# ---------------------------------------------------------------------------------------
# Parsing


def parse(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass `cls` from a params mapping, naming `where` in every error. Every
    field not marked optional must be present: params.yaml is the single source of the
    pipeline's settings (code defaults serve tests and library users)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params: '{where}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in fields:
            raise ConfigError(f"params: unknown key '{where}.{key}'{suggest(key, fields)}")
    missing = [
        name for name, f in fields.items() if name not in raw and not f.metadata.get("optional")
    ]
    if missing:
        raise ConfigError(
            f"params: '{where}' is missing {', '.join(repr(m) for m in missing)} "
            "(see the project's params.yaml for every key and its default)"
        )
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in raw.items()}
    return cls(**values)


def suggest(word: str, choices: Any) -> str:
    """'; did you mean X?' for a close match, and the valid choices."""
    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ";"
    return f"{hint} expected one of {choices}"


def check_names(values: list[str], valid: tuple[str, ...], where: str) -> None:
    for value in values:
        if value not in valid:
            raise ConfigError(f"params: '{where}' has '{value}'{suggest(value, valid)}")


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
    """The params file as a mapping; an unknown top-level section is an error."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params file {path} does not exist")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"params file {path} must hold a mapping at the top level")
    for key in params:
        if key not in SECTIONS:
            raise ConfigError(f"{path}: unknown section '{key}'{suggest(key, SECTIONS)}")
    return params


def section(params: dict[str, Any], name: str) -> Any:
    if name not in params:
        raise ConfigError(f"params: the section '{name}' is missing")
    return params[name]


def section_keys(params: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """Only `keys` of a section (each read, none other), for a stage that declares only them."""
    raw = section(params, name)
    if not isinstance(raw, dict):
        raise ConfigError(f"params: '{name}' must be a mapping")
    missing = [key for key in keys if key not in raw]
    if missing:
        raise ConfigError(f"params: '{name}' lacks {missing}")
    return {key: raw[key] for key in keys}


# ---------------------------------------------------------------------------------------
# One reader per section (or key) that a stage reads; each validates what it returns.


def seed(params: dict[str, Any]) -> int:
    value = section(params, "seed")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"params: 'seed' must be an integer, got {value!r}")
    return value


def dataset_names(params: dict[str, Any]) -> list[str]:
    datasets = section(params, "datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError("params: 'datasets' must map at least one data set name to its config")
    reserved = [name for name in datasets if name in RESERVED_NAMES]
    if reserved:
        raise ConfigError(
            f"params: data set name(s) {reserved} are taken by pipeline outputs; rename them"
        )
    return sorted(datasets)


def dataset_config(params: dict[str, Any], name: str) -> DatasetConfig:
    datasets = section(params, "datasets") or {}
    if name not in datasets:
        raise ConfigError(f"params: no data set named '{name}' under 'datasets'")
    where = f"datasets.{name}"
    cfg = parse(DatasetConfig, datasets[name], where)
    if cfg.source not in SOURCES:
        raise ConfigError(
            f"params: '{where}.source' is '{cfg.source}'{suggest(cfg.source, SOURCES)}"
        )
    if not 0.0 < cfg.test_size < 1.0:
        raise ConfigError(f"params: '{where}.test_size' must lie in (0, 1), got {cfg.test_size}")
    for key in ("max_examples", "max_ood_examples"):
        value = getattr(cfg, key)
        if value is not None and value < 4:
            raise ConfigError(f"params: '{where}.{key}' must be at least 4, got {value}")
    needs = {
        "sae_probes": ["task"],
        "file": ["path"],
        "sae_probes_attribute": ["task", "attribute_task"],
    }.get(cfg.source, [])
    for key in needs:
        if getattr(cfg, key) is None:
            raise ConfigError(f"params: '{where}' has source '{cfg.source}' but no '{key}'")
    check_benchmark(cfg, where)
    if cfg.source == "huggingface" and not (cfg.hf_name or cfg.path):
        raise ConfigError(f"params: '{where}' has source 'huggingface' but no 'hf_name' or 'path'")
    if cfg.path is not None:
        require_inside(cfg.path, DATA_INPUTS, f"{where}.path")
    return cfg


def check_benchmark(cfg: DatasetConfig, where: str) -> None:
    if not 0.5 <= cfg.skew < 1.0:
        raise ConfigError(f"params: '{where}.skew' must lie in [0.5, 1), got {cfg.skew}")
    if cfg.test_per_cell < 1:
        raise ConfigError(f"params: '{where}.test_per_cell' must be positive")
    if cfg.cue_marker is None:
        return
    if not cfg.cue_marker.strip():
        raise ConfigError(f"params: '{where}.cue_marker' is empty")
    if not 0.5 <= cfg.cue_rate <= 1.0:
        raise ConfigError(f"params: '{where}.cue_rate' must lie in [0.5, 1], got {cfg.cue_rate}")
    if cfg.cue_position not in ("prefix", "suffix"):
        raise ConfigError(
            f"params: '{where}.cue_position' must be prefix or suffix, got '{cfg.cue_position}'"
        )
    if cfg.group_column is not None or cfg.source == "sae_probes_attribute":
        raise ConfigError(
            f"params: '{where}' has a cue_marker and a group already; the cue is recorded "
            "in 'group', so the two cannot be combined"
        )


def require_inside(path: str, folder: str, where: str) -> None:
    """A user input must lie in its tracked folder, so that DVC sees it change."""
    inside = Path(path)
    if inside.is_absolute() or ".." in inside.parts or Path(folder) not in inside.parents:
        raise ConfigError(
            f"params: '{where}' is '{path}'; inputs must lie under {folder}/ (relative to the "
            f"project; a link to a file will do, a folder must be copied), where the pipeline "
            "tracks them"
        )


def model_config(params: dict[str, Any]) -> ModelConfig:
    return parse(ModelConfig, section(params, "model"), "model")


def field_value(params: dict[str, Any], cls: type, name: str, key: str) -> Any:
    """One key of a section, typed as `cls` types it: for a stage that needs that key only
    (and so declares only it in dvc.yaml)."""
    raw = section(params, name)
    if not isinstance(raw, dict) or key not in raw:
        raise ConfigError(f"params: '{name}.{key}' is missing")
    return _coerce(raw[key], typing.get_type_hints(cls)[key], f"{name}.{key}")


def layers(params: dict[str, Any]) -> list[int]:
    value = field_value(params, ExtractConfig, "extract", "layers")
    check_layers(value)
    return value


def check_layers(value: list[int]) -> None:
    if not value:
        raise ConfigError("params: 'extract.layers' must name at least one layer")


def extract_config(params: dict[str, Any]) -> ExtractConfig:
    cfg = parse(ExtractConfig, section(params, "extract"), "extract")
    check_names(cfg.pooling, POOLINGS, "extract.pooling")
    check_layers(cfg.layers)
    check_names([cfg.token_dtype], TOKEN_DTYPES, "extract.token_dtype")
    if cfg.max_length < 2 or cfg.batch_tokens < cfg.max_length:
        raise ConfigError(
            "params: 'extract.max_length' must be >= 2 and 'extract.batch_tokens' >= max_length"
        )
    return cfg


def corpus_config(params: dict[str, Any]) -> CorpusConfig:
    cfg = parse(CorpusConfig, section(params, "corpus"), "corpus")
    if not cfg.tasks:
        raise ConfigError("params: 'corpus.tasks' must name at least one sae-probes task")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise ConfigError(
            f"params: 'corpus.eval_fraction' must lie in [0, 1), got {cfg.eval_fraction}"
        )
    return cfg


def sae_train_config(params: dict[str, Any]) -> SAETrainConfig:
    cfg = parse(SAETrainConfig, section(params, "sae"), "sae")
    check_names([cfg.architecture], TRAINABLE_ARCHITECTURES, "sae.architecture")
    check_names([cfg.loss], SAE_LOSSES, "sae.loss")
    if cfg.expansion < 1 or cfg.batch_size < 1 or cfg.train_tokens < cfg.batch_size:
        raise ConfigError(
            "params: 'sae.expansion', 'sae.batch_size' >= 1 and 'sae.train_tokens' >= batch_size"
        )
    for layer, path in cfg.pretrained.items():
        require_inside(path, SAE_INPUTS, f"sae.pretrained.{layer}")
    return cfg


def finetune_config(params: dict[str, Any]) -> FinetuneConfig:
    cfg = parse(FinetuneConfig, section(params, "finetune"), "finetune")
    if cfg.epochs < 0 or cfg.batch_size < 1:
        raise ConfigError("params: 'finetune.epochs' must be >= 0 and 'finetune.batch_size' >= 1")
    if cfg.max_docs is not None and cfg.max_docs < 1:
        raise ConfigError(
            f"params: 'finetune.max_docs' is {cfg.max_docs}; expected null (every training "
            "text) or a positive number of texts"
        )
    return cfg


def sae_eval_config(params: dict[str, Any]) -> SAEEvalConfig:
    return parse(SAEEvalConfig, section(params, "sae_eval"), "sae_eval")


SAE_CARD_KEYS = ("card_top", "card_context_chars")


def sae_card_config(params: dict[str, Any]) -> SAEEvalConfig:
    """sae_eval's feature-card keys alone (the SAE stages'; sae_ce reads ce_docs)."""
    cards = section_keys(params, "sae_eval", SAE_CARD_KEYS)
    return parse(SAEEvalConfig, {**cards, "ce_docs": 0}, "sae_eval")


def ce_docs(params: dict[str, Any]) -> int:
    value = field_value(params, SAEEvalConfig, "sae_eval", "ce_docs")
    if value < 0:
        raise ConfigError(f"params: 'sae_eval.ce_docs' is {value}; expected 0 or more")
    return value


def max_length(params: dict[str, Any]) -> int:
    return field_value(params, ExtractConfig, "extract", "max_length")


def features_config(params: dict[str, Any]) -> FeaturesConfig:
    cfg = parse(FeaturesConfig, section(params, "features"), "features")
    check_names(cfg.pooling, FEATURE_POOLINGS, "features.pooling")
    check_names(cfg.saes, FEATURE_SAES, "features.saes")
    check_k(cfg.top_n, "features.top_n")
    return cfg


def probe_config(params: dict[str, Any]) -> ProbeConfig:
    cfg = parse(ProbeConfig, section(params, "probe"), "probe")
    check_names(cfg.baselines, HIDDEN_METHODS + TEXT_METHODS, "probe.baselines")
    check_names(cfg.sae_methods, SAE_METHODS, "probe.sae_methods")
    check_names(cfg.saes, FEATURE_SAES, "probe.saes")
    check_names([cfg.hidden_pooling], POOLINGS, "probe.hidden_pooling")
    check_names([cfg.sae_pooling], DENSE_POOLINGS, "probe.sae_pooling")
    check_names(cfg.compare_poolings, POOLINGS, "probe.compare_poolings")
    check_names(cfg.compare_methods, HIDDEN_METHODS + SAE_METHODS, "probe.compare_methods")
    check_names(cfg.mosaic_methods, MOSAIC_METHODS, "probe.mosaic_methods")
    check_names([cfg.l1_solver], L1_SOLVERS, "probe.l1_solver")
    check_names([cfg.l2_solver], L2_SOLVERS, "probe.l2_solver")
    check_names([cfg.backend], PROBE_BACKENDS, "probe.backend")
    if cfg.backend == "dask" and not cfg.scheduler:
        raise ConfigError(
            "params: 'probe.backend' dask needs 'probe.scheduler', the address of a Dask "
            "scheduler such as tcp://127.0.0.1:8786 (start one with `dask scheduler`)"
        )
    check_grids(cfg)
    if len(cfg.c_log10_range) != 2 or cfg.c_grid_size < 1:
        raise ConfigError("params: 'probe.c_log10_range' must be [low, high], c_grid_size >= 1")
    check_k(cfg.sae_k, "probe.sae_k")
    return cfg


def check_k(values: list[int], where: str) -> None:
    if not values or any(k < 1 for k in values):
        raise ConfigError(f"params: '{where}' must hold positive integers, got {values}")


def check_grids(cfg: ProbeConfig) -> None:
    """Every searched baseline has a search space in probe.grids, with exactly its keys."""
    check_names(list(cfg.grids), tuple(GRID_KEYS), "probe.grids")
    for name in cfg.baselines + cfg.mosaic_methods:
        if name not in GRID_KEYS:
            continue
        if name not in cfg.grids:
            raise ConfigError(f"params: 'probe.grids' has no search space for '{name}'")
        check_grid(name, cfg.grids[name], f"probe.grids.{name}")


def check_grid(name: str, spec: Any, where: str) -> None:
    kind = GRID_KIND.get(name, "product")
    points = spec if kind == "product" and isinstance(spec, list) else [spec]
    for point in points:
        if not isinstance(point, dict) or set(point) != set(GRID_KEYS[name]):
            raise ConfigError(
                f"params: '{where}' must give {sorted(GRID_KEYS[name])}, got {point!r}"
            )
    if kind == "log":
        bad = [k for k, v in spec.items() if not _is_exact(v, int) or v < 1]
        if bad:
            raise ConfigError(f"params: '{where}.{bad[0]}' must be a positive integer")
        return
    if isinstance(spec, list):
        return
    lists = {k: v for k, v in spec.items() if k != "trials"}
    bad = [k for k, v in lists.items() if not isinstance(v, list) or not v]
    if bad:
        raise ConfigError(f"params: '{where}.{bad[0]}' must be a non-empty list")
    trials = spec.get("trials", 1)
    if not _is_exact(trials, int) or trials < 1:
        raise ConfigError(f"params: '{where}.trials' must be a positive integer")


def probe_report_config(params: dict[str, Any]) -> ProbeReportConfig:
    cfg = parse(ProbeReportConfig, section(params, "probe_report"), "probe_report")
    check_names(cfg.quiver_baselines, HIDDEN_METHODS, "probe_report.quiver_baselines")
    check_names(cfg.quiver_saes, FEATURE_SAES, "probe_report.quiver_saes")
    check_k(cfg.quiver_sae_k, "probe_report.quiver_sae_k")
    if cfg.bootstrap < 1:
        raise ConfigError("params: 'probe_report.bootstrap' must be at least 1")
    return cfg


def check_levels(regime: str, levels: list[float]) -> None:
    where = f"regimes.{regime}.levels"
    if regime == "scarcity" and any(lv < 2 or lv != int(lv) for lv in levels):
        raise ConfigError(f"params: '{where}' must be training sizes >= 2, got {levels}")
    if regime == "imbalance" and any(not 0 < lv < 1 for lv in levels):
        raise ConfigError(f"params: '{where}' must be positive shares in (0, 1), got {levels}")
    if regime == "noise" and any(not 0 <= lv <= 1 for lv in levels):
        raise ConfigError(f"params: '{where}' must be flip shares in [0, 1], got {levels}")


def normal_regime(params: dict[str, Any]) -> RegimeConfig:
    """regimes.normal alone: the multi-token probes draw the probe stage's normal samples."""
    raw = section(params, "regimes") or {}
    if not isinstance(raw, dict) or "normal" not in raw:
        raise ConfigError("params: 'regimes.normal' is missing; the multi-token probes use it")
    cfg = parse(RegimeConfig, raw["normal"], "regimes.normal")
    if cfg.seeds < 1:
        raise ConfigError("params: 'regimes.normal.seeds' must be at least 1")
    return cfg


def regime_configs(params: dict[str, Any]) -> dict[str, RegimeConfig]:
    raw = section(params, "regimes") or {}
    if not isinstance(raw, dict):
        raise ConfigError("params: 'regimes' must map regime names to their settings")
    check_names(list(raw), REGIMES, "regimes")
    valid_methods = HIDDEN_METHODS + TEXT_METHODS + SAE_METHODS
    out = {}
    for name, value in raw.items():
        cfg = parse(RegimeConfig, value, f"regimes.{name}")
        if cfg.seeds < 1:
            raise ConfigError(f"params: 'regimes.{name}.seeds' must be at least 1")
        if name in ("scarcity", "imbalance", "noise") and not cfg.levels:
            raise ConfigError(f"params: 'regimes.{name}.levels' must list at least one level")
        if cfg.methods is not None:
            check_names(cfg.methods, valid_methods, f"regimes.{name}.methods")
        if cfg.sae_k is not None:
            check_k(cfg.sae_k, f"regimes.{name}.sae_k")
        check_levels(name, cfg.levels)
        out[name] = cfg
    return out


def validate_all(params: dict[str, Any]) -> None:
    """Every section, and what one section says of another: run before any stage, so that
    a mistake anywhere stops the pipeline before it replaces an output."""
    for key in SECTIONS:
        section(params, key)
    seed(params)
    for name in dataset_names(params):
        dataset_config(params, name)
    model_config(params)
    extract = extract_config(params)
    corpus_config(params)
    sae = sae_train_config(params)
    finetune_config(params)
    sae_eval_config(params)
    ce_docs(params)
    features = features_config(params)
    probe = probe_config(params)
    report = probe_report_config(params)
    regimes = regime_configs(params)
    names = dataset_names(params)
    probe_sets = probe_datasets(params)
    unknown = [name for name in probe_sets if name not in names]
    if unknown:
        raise ConfigError(
            f"params: 'probe_datasets' names {unknown}, which 'datasets' does not define"
        )
    check_selfreg(params, names, extract.layers)
    check_transfer(params, names)
    check_cross_model(params, names)
    check_finetune_datasets(params, names)
    check_full_benchmark(params, extract.layers)
    multi = multitoken_config(params)
    unknown = [name for name in multi.datasets if name not in names]
    if unknown:
        raise ConfigError(
            f"params: 'multitoken.datasets' names {unknown}, which 'datasets' does not define"
        )
    extra = [layer for layer in multi.layers if layer not in extract.layers]
    if extra:
        raise ConfigError(f"params: 'multitoken.layers' has {extra}, not in 'extract.layers'")
    if sae.architecture != "topk":
        raise ConfigError(
            f"params: 'sae.architecture' is '{sae.architecture}'; the pipeline fine-tunes every "
            "SAE on each task as the self-regularization paper does, which needs topk"
        )
    layers = [str(layer) for layer in extract.layers]
    for layer in sae.pretrained:
        if layer not in layers:
            raise ConfigError(
                f"params: 'sae.pretrained' names layer {layer}, which 'extract.layers' "
                f"{extract.layers} does not extract"
            )
    if probe.hidden_pooling not in extract.pooling:
        raise ConfigError(
            f"params: 'probe.hidden_pooling' is '{probe.hidden_pooling}', which "
            f"'extract.pooling' {extract.pooling} does not compute"
        )
    if probe.sae_methods and probe.sae_pooling not in features.pooling:
        raise ConfigError(
            f"params: 'probe.sae_pooling' is '{probe.sae_pooling}', which "
            f"'features.pooling' {features.pooling} does not compute"
        )
    for pooling in probe.compare_poolings:
        if pooling not in extract.pooling or pooling not in features.pooling:
            raise ConfigError(
                f"params: 'probe.compare_poolings' has '{pooling}', which 'extract.pooling' "
                f"{extract.pooling} or 'features.pooling' {features.pooling} does not compute"
            )
    if probe.mosaic_methods:
        extra = [n for n in probe.mosaic_top_n if n not in features.top_n]
        if "topn" not in features.pooling or extra:
            raise ConfigError(
                f"params: 'probe.mosaic_top_n' {probe.mosaic_top_n} needs 'topn' in "
                f"'features.pooling' and each n in 'features.top_n' {features.top_n}"
            )
    missing = [s for s in probe.saes if s not in features.saes]
    if probe.sae_methods and missing:
        raise ConfigError(f"params: 'probe.saes' has {missing}, not in 'features.saes'")
    if report.quiver_layer not in extract.layers:
        raise ConfigError(
            f"params: 'probe_report.quiver_layer' is {report.quiver_layer}, not in "
            f"'extract.layers' {extract.layers}"
        )
    for name, regime in regimes.items():
        extra = [layer for layer in regime.layers or [] if layer not in extract.layers]
        if extra:
            raise ConfigError(
                f"params: 'regimes.{name}.layers' has {extra}, not in 'extract.layers'"
            )
        extra = [d for d in regime.datasets or [] if d not in probe_sets]
        if extra:
            raise ConfigError(
                f"params: 'regimes.{name}.datasets' has {extra}, not in 'probe_datasets' "
                f"{probe_sets}"
            )


# ---------------------------------------------------------------------------------------
# Self-regularization


def dataset_list(params: dict[str, Any], key: str) -> list[str]:
    """A top-level list of data set names, each listed once."""
    names = _coerce(section(params, key), list[str], key)
    if len(set(names)) != len(names):
        raise ConfigError(f"params: '{key}' lists a data set twice: {names}")
    return names


def probe_datasets(params: dict[str, Any]) -> list[str]:
    """The data sets the probe stages sweep (each one of `datasets`)."""
    return dataset_list(params, "probe_datasets")


def finetune_datasets(params: dict[str, Any]) -> list[str]:
    """The data sets whose SAEs finetune_sae fine-tunes (at every extracted layer)."""
    return dataset_list(params, "finetune_datasets")


def finetuned_readers(params: dict[str, Any]) -> dict[str, list[str]]:
    """Each data set whose fine-tuned SAEs some stage reads, with the params that say so."""
    readers: dict[str, list[str]] = {}
    for name in probe_datasets(params):  # features@ encodes with both SAEs
        readers.setdefault(name, []).append("probe_datasets")
    if "finetuned" in transfer_fitting_config(params).saes:
        for pair, cfg in transfer_config(params).pairs.items():
            readers.setdefault(cfg.train, []).append(f"transfer.pairs.{pair}.train")
        for name in cross_model_config(params).datasets:
            readers.setdefault(name, []).append("cross_model.datasets")
    for name in unintended_config(params).benchmarks:
        readers.setdefault(name, []).append("unintended.benchmarks")
    return readers


def check_finetune_datasets(params: dict[str, Any], datasets: list[str]) -> None:
    """Every data set listed is defined, and every fine-tuned SAE a stage reads is made."""
    names = finetune_datasets(params)
    unknown = [name for name in names if name not in datasets]
    if unknown:
        raise ConfigError(
            f"params: 'finetune_datasets' names {unknown}, which 'datasets' does not define"
        )
    missing = {
        name: where for name, where in finetuned_readers(params).items() if name not in names
    }
    if missing:
        said = "; ".join(f"{name} (read through {', '.join(w)})" for name, w in missing.items())
        raise ConfigError(
            f"params: 'finetune_datasets' lacks {list(missing)}, whose fine-tuned SAEs other "
            f"stages read: {said}. Add them to 'finetune_datasets'"
        )


def _unintended(params: dict[str, Any]) -> dict[str, Any]:
    raw = section(params, "unintended")
    if not isinstance(raw, dict):
        raise ConfigError("params: 'unintended' must be a mapping")
    return raw


def judges_config(params: dict[str, Any], name: str) -> JudgesConfig:
    """unintended.benchmarks.<name>: the judges of one data set (at least one)."""
    benchmarks = _unintended(params).get("benchmarks")
    if not isinstance(benchmarks, dict) or name not in benchmarks:
        raise ConfigError(f"params: 'unintended.benchmarks' has no entry for data set '{name}'")
    where = f"unintended.benchmarks.{name}"
    cfg = parse(JudgesConfig, benchmarks[name], where)
    if cfg.concepts is None and cfg.attribute is None and cfg.llm is None:
        raise ConfigError(f"params: '{where}' names no judge; expected some of {list(JUDGES)}")
    if cfg.concepts is not None:
        concepts = cfg.concepts
        empty = [c for c, words in concepts.keywords.items() if not any(w.strip() for w in words)]
        if not concepts.keywords or empty:
            raise ConfigError(
                f"params: '{where}.concepts.keywords' must map each concept to keywords; "
                f"{empty or 'none'} has none"
            )
        if not 0.0 < concepts.min_share <= 1.0:
            raise ConfigError(f"params: '{where}.concepts.min_share' must lie in (0, 1]")
        if concepts.window_chars < 0:
            raise ConfigError(f"params: '{where}.concepts.window_chars' must be >= 0")
    attribute = cfg.attribute
    if attribute is not None and not (
        0.0 <= attribute.min_separation <= 1.0 and -1.0 <= attribute.margin <= 1.0
    ):
        raise ConfigError(
            f"params: '{where}.attribute' needs min_separation in [0, 1] and margin in "
            f"[-1, 1] (separations are |2 AUC - 1|); got {attribute}"
        )
    if cfg.llm is not None and not cfg.llm.task.strip():
        raise ConfigError(f"params: '{where}.llm.task' must describe the task in a sentence")
    return cfg


def named_field(params: dict[str, Any], cls: type, name: str, key: str, valid: tuple) -> str:
    """One key of a section whose value must be one of `valid`."""
    value = field_value(params, cls, name, key)
    check_names([value], valid, f"{name}.{key}")
    return value


def unintended_combine(params: dict[str, Any]) -> str:
    return named_field(params, UnintendedConfig, "unintended", "combine", COMBINE)


def llm_endpoint_config(params: dict[str, Any]) -> LLMEndpointConfig:
    cfg = parse(LLMEndpointConfig, _unintended(params).get("llm"), "unintended.llm")
    if cfg.spans < 1 or cfg.span_chars < 1 or cfg.timeout_s <= 0:
        raise ConfigError("params: 'unintended.llm' spans, span_chars and timeout_s must be > 0")
    return cfg


def unintended_config(params: dict[str, Any]) -> UnintendedConfig:
    cfg = parse(UnintendedConfig, _unintended(params), "unintended")
    unintended_combine(params)
    llm_endpoint_config(params)
    for name in cfg.benchmarks:
        judges_config(params, name)
    return cfg


def selfreg_pooling(params: dict[str, Any]) -> str:
    return named_field(params, SelfRegConfig, "selfreg", "pooling", POOLINGS)


def selfreg_config(params: dict[str, Any]) -> SelfRegConfig:
    cfg = parse(SelfRegConfig, section(params, "selfreg"), "selfreg")
    selfreg_pooling(params)
    regularizers = ("l2", "dropout", "focal_gamma", "label_smoothing", "spectral")
    for name, overrides in cfg.baselines.items():
        if name in SELFREG_METHODS:
            raise ConfigError(f"params: 'selfreg.baselines.{name}' is a self-regularization method")
        check_names(list(overrides), regularizers, f"selfreg.baselines.{name}")
    check_names(cfg.methods, tuple(cfg.baselines) + SELFREG_METHODS, "selfreg.methods")
    if "plain" not in cfg.methods or cfg.baselines.get("plain", None) != {}:
        raise ConfigError(
            "params: 'selfreg.methods' must include 'plain', with 'selfreg.baselines.plain: "
            "{}' (the unregularized classifier every method is tested against)"
        )
    if cfg.seeds < 2:
        raise ConfigError(
            f"params: 'selfreg.seeds' is {cfg.seeds}; a paired test needs at least 2 (the "
            "paper's comparison: 5)"
        )
    if any(m in cfg.methods for m in ("selfreg", "selfreg_penalty")) and (
        not cfg.lambdas or any(lam <= 0 for lam in cfg.lambdas)
    ):
        raise ConfigError(f"params: 'selfreg.lambdas' must be positive, got {cfg.lambdas}")
    for key, values in (("methods", cfg.methods), ("lambdas", [f"{v:g}" for v in cfg.lambdas])):
        if len(set(values)) != len(values):
            raise ConfigError(f"params: 'selfreg.{key}' lists a value twice: {values}")
    c = cfg.classifier
    if not 0.0 < c.val_fraction < 1.0 or c.batch_size < 1 or c.max_epochs < 1 or c.lr <= 0:
        raise ConfigError(
            "params: 'selfreg.classifier' needs lr > 0, batch_size and max_epochs >= 1 and "
            "val_fraction in (0, 1)"
        )
    if c.patience < 1 or c.max_decays < 0 or not 0.0 < c.lr_decay <= 1.0:
        raise ConfigError(
            "params: 'selfreg.classifier' needs patience >= 1, max_decays >= 0 and lr_decay "
            "in (0, 1]"
        )
    for name, overrides in [("classifier", dataclasses.asdict(c)), *cfg.baselines.items()]:
        check_regularizers(
            overrides, f"selfreg.{'' if name == 'classifier' else 'baselines.'}{name}"
        )
    return cfg


def check_regularizers(values: dict[str, float], where: str) -> None:
    """Coefficients >= 0; dropout and label smoothing are probabilities below 1."""
    for key in ("weight_decay", "l2", "focal_gamma", "spectral", "dropout", "label_smoothing"):
        value = values.get(key, 0.0)
        if value < 0 or (key in ("dropout", "label_smoothing") and value >= 1):
            bound = "[0, 1)" if key in ("dropout", "label_smoothing") else ">= 0"
            raise ConfigError(f"params: '{where}.{key}' must be {bound}, got {value}")


def check_selfreg(params: dict[str, Any], datasets: list[str], layers: list[int]) -> None:
    """What the self-regularization sections say of the others."""
    cfg = unintended_config(params)
    selfreg_config(params)
    extra = [layer for layer in cfg.layers if layer not in layers]
    if extra:
        raise ConfigError(f"params: 'unintended.layers' has {extra}, not in 'extract.layers'")
    unknown = [name for name in cfg.benchmarks if name not in datasets]
    if unknown:
        raise ConfigError(
            f"params: 'unintended.benchmarks' names {unknown}, which 'datasets' does not define"
        )
    extract_pooling = section(params, "extract").get("pooling", [])
    pooling = selfreg_pooling(params)
    if pooling not in extract_pooling:
        raise ConfigError(
            f"params: 'selfreg.pooling' is '{pooling}', which 'extract.pooling' "
            f"{extract_pooling} does not compute"
        )


# ---------------------------------------------------------------------------------------
# Transfer


def transfer_config(params: dict[str, Any]) -> TransferConfig:
    cfg = parse(TransferConfig, section(params, "transfer"), "transfer")
    check_transfer_fitting(cfg)
    for name, pair in cfg.pairs.items():
        check_names([pair.test_split], TRANSFER_SPLITS, f"transfer.pairs.{name}.test_split")
        two_domains = pair.train_domain is not None and pair.test_domain is not None
        moves = pair.test_split == "ood" or two_domains and pair.train_domain != pair.test_domain
        if pair.train == pair.test and not moves:
            raise ConfigError(
                f"params: 'transfer.pairs.{name}' trains and tests on the same rows of "
                f"'{pair.train}'; name two data sets, test_split: ood, or two different "
                "domains (train_domain and test_domain)"
            )
    return cfg


# The transfer keys that say how probes are fit, not on which pairs: the cross-model stages
# read these alone, so that a new transfer pair does not rerun them.
TRANSFER_FITTING_KEYS = ("seeds", "max_train", "saes", "sae_k", "methods")


def transfer_fitting_config(params: dict[str, Any]) -> TransferConfig:
    """transfer's fitting keys (TRANSFER_FITTING_KEYS), with no pairs."""
    fitting = section_keys(params, "transfer", TRANSFER_FITTING_KEYS)
    cfg = parse(TransferConfig, {**fitting, "pairs": {}}, "transfer")
    check_transfer_fitting(cfg)
    return cfg


def check_transfer_fitting(cfg: TransferConfig) -> None:
    valid = HIDDEN_METHODS + TEXT_METHODS + SAE_METHODS + MOSAIC_METHODS + TRANSFER_EXTRA_METHODS
    check_names(cfg.methods, valid, "transfer.methods")
    check_names(cfg.saes, ("pretrained", "finetuned"), "transfer.saes")
    check_k(cfg.sae_k, "transfer.sae_k")
    if cfg.seeds < 2:
        raise ConfigError(
            f"params: 'transfer.seeds' is {cfg.seeds}; an interval over seeds needs at least 2"
        )
    if cfg.max_train < 4:
        raise ConfigError(f"params: 'transfer.max_train' is {cfg.max_train}; expected >= 4")


def check_transfer(params: dict[str, Any], datasets: list[str]) -> None:
    """What the transfer section says of the others."""
    cfg = transfer_config(params)
    for name, pair in cfg.pairs.items():
        for role in ("train", "test"):
            value = getattr(pair, role)
            if value not in datasets:
                raise ConfigError(
                    f"params: 'transfer.pairs.{name}.{role}' is '{value}', which 'datasets' "
                    f"does not define{suggest(value, datasets)}"
                )


def cross_model_config(params: dict[str, Any]) -> CrossModelConfig:
    return checked_cross_model(
        parse(CrossModelConfig, section(params, "cross_model"), "cross_model")
    )


def checked_cross_model(cfg: CrossModelConfig) -> CrossModelConfig:
    if "{text}" not in cfg.prompt:
        raise ConfigError("params: 'cross_model.prompt' must contain {text}, where the item goes")
    if len(set(cfg.answers.values())) < 2:
        raise ConfigError(
            f"params: 'cross_model.answers' maps labels to {sorted(set(cfg.answers.values()))}; "
            "the second model needs at least two different answers to choose from"
        )
    if not cfg.layers or min(cfg.layers) < 0:
        raise ConfigError("params: 'cross_model.layers' must name hidden states, 0 or above")
    if cfg.max_length < 8 or cfg.batch_size < 1:
        raise ConfigError("params: 'cross_model' needs max_length >= 8 and batch_size >= 1")
    return cfg


# What behaviour@ reads of cross_model: everything but the list of data sets, so that a new
# data set does not rerun the second model on the others.
BEHAVIOUR_KEYS = ("model", "prompt", "answers", "layers", "max_length", "batch_size")


def behaviour_config(params: dict[str, Any]) -> CrossModelConfig:
    """cross_model without its data sets (BEHAVIOUR_KEYS), checked as cross_model_config
    checks it."""
    keys = section_keys(params, "cross_model", BEHAVIOUR_KEYS)
    return checked_cross_model(parse(CrossModelConfig, {**keys, "datasets": []}, "cross_model"))


def second_model(params: dict[str, Any]) -> tuple[str, list[int]]:
    """What cross_model@ reads of cross_model: the second model's name (it names the task in
    the results table) and the layers of its own hidden states."""
    raw = section(params, "cross_model")
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        raise ConfigError("params: 'cross_model.model' must be a mapping")
    if "name" not in raw["model"] or "layers" not in raw:
        raise ConfigError("params: 'cross_model' needs model.name and layers")
    name = _coerce(raw["model"]["name"], str, "cross_model.model.name")
    layers = _coerce(raw["layers"], list[int], "cross_model.layers")
    return name, layers


def check_cross_model(params: dict[str, Any], datasets: list[str]) -> None:
    cfg = cross_model_config(params)
    for name in cfg.datasets:
        if name not in datasets:
            raise ConfigError(
                f"params: 'cross_model.datasets' names '{name}', which 'datasets' does not "
                f"define{suggest(name, datasets)}"
            )


def multitoken_config(params: dict[str, Any]) -> MultiTokenConfig:
    cfg = parse(MultiTokenConfig, section(params, "multitoken"), "multitoken")
    check_names(cfg.methods, MULTITOKEN_METHODS, "multitoken.methods")
    a = cfg.attention
    if a.lr <= 0 or a.steps < 1 or not 0.0 < a.val_fraction < 1.0 or a.l2 < 0:
        raise ConfigError(
            "params: 'multitoken.attention' needs lr > 0, steps >= 1, val_fraction in (0, 1) "
            "and l2 >= 0"
        )
    if cfg.concat_components < 1:
        raise ConfigError("params: 'multitoken.concat_components' must be at least 1")
    if cfg.concat_positions is not None and cfg.concat_positions < 1:
        raise ConfigError("params: 'multitoken.concat_positions' must be null or >= 1")
    return cfg


# ---------------------------------------------------------------------------------------
# The full benchmark


def benchmark_config(params: dict[str, Any]) -> BenchmarkConfig:
    cfg = parse(BenchmarkConfig, section(params, "benchmark"), "benchmark")
    check_benchmark_settings(cfg)
    if len(set(cfg.tasks)) != len(cfg.tasks):
        raise ConfigError("params: 'benchmark.tasks' lists a task twice")
    odd = [task for task in cfg.tasks if not task or "/" in task or task.startswith(".")]
    if odd:
        raise ConfigError(
            f"params: 'benchmark.tasks' has {odd}; expected task names of the sae-probes "
            "benchmark, such as 96_spam_is (each names its stage and output file)"
        )
    return cfg


def benchmark_task_config(params: dict[str, Any]) -> BenchmarkConfig:
    """benchmark's per-task keys (BENCHMARK_TASK_KEYS), with no task list."""
    keys = section_keys(params, "benchmark", BENCHMARK_TASK_KEYS)
    cfg = parse(BenchmarkConfig, {**keys, "tasks": []}, "benchmark")
    check_benchmark_settings(cfg)
    return cfg


def check_benchmark_settings(cfg: BenchmarkConfig) -> None:
    check_names(cfg.methods, BENCHMARK_METHODS, "benchmark.methods")
    check_names(cfg.regimes, REGIMES, "benchmark.regimes")
    if not cfg.methods or not cfg.regimes:
        raise ConfigError("params: 'benchmark.methods' and 'benchmark.regimes' must not be empty")
    for key in ("max_examples", "max_ood_examples"):
        value = getattr(cfg, key)
        if value is not None and value < 4:
            raise ConfigError(f"params: 'benchmark.{key}' is {value}; expected null or >= 4")


def benchmark_dataset(cfg: BenchmarkConfig, task: str) -> dict[str, Any]:
    """One task as a `datasets` entry: the benchmark's file of that name, capped."""
    return {
        "source": "sae_probes",
        "task": task,
        "max_examples": cfg.max_examples,
        "max_ood_examples": cfg.max_ood_examples,
    }


def benchmark_probe_config(params: dict[str, Any], cfg: BenchmarkConfig) -> ProbeConfig:
    """`probe`, narrowed to the benchmark's methods on the pretrained SAE at the main
    poolings (MOSAIC's pooling comparison and classifiers are not the paper's)."""
    probe = probe_config(params)
    return dataclasses.replace(
        probe,
        baselines=[m for m in cfg.methods if m in HIDDEN_METHODS + TEXT_METHODS],
        sae_methods=[m for m in cfg.methods if m in SAE_METHODS],
        mosaic_methods=[],
        compare_poolings=[],
        saes=["pretrained"],
    )


def benchmark_regimes(params: dict[str, Any], cfg: BenchmarkConfig) -> dict[str, RegimeConfig]:
    """The configured regimes the benchmark runs, over its one layer."""
    regimes = regime_configs(params)
    return {
        name: dataclasses.replace(regimes[name], layers=None, datasets=None)
        for name in REGIMES
        if name in cfg.regimes and name in regimes
    }


BENCHMARK_EXTRACT_KEYS = ("max_length", "batch_tokens", "max_batch_size")


def benchmark_extract_config(params: dict[str, Any], cfg: BenchmarkConfig) -> ExtractConfig:
    """extract's batching keys, at the benchmark's layer (the poolings are the probes')."""
    keys = {
        key: field_value(params, ExtractConfig, "extract", key) for key in BENCHMARK_EXTRACT_KEYS
    }
    return ExtractConfig(layers=[cfg.layer], pooling=["last"], **keys)


def benchmark_report_config(params: dict[str, Any], cfg: BenchmarkConfig) -> ProbeReportConfig:
    """probe_report's comparison at the benchmark's layer, on the pretrained SAE."""
    report = probe_report_config(params)
    return dataclasses.replace(report, quiver_layer=cfg.layer, quiver_saes=["pretrained"])


def check_full_benchmark(params: dict[str, Any], layers: list[int]) -> None:
    """What the benchmark section says of the others, when it lists tasks."""
    cfg = benchmark_config(params)
    if not cfg.tasks:
        return
    if cfg.layer not in layers:
        raise ConfigError(
            f"params: 'benchmark.layer' is {cfg.layer}, not in 'extract.layers' {layers} "
            "(whose pretrained SAEs train_sae makes)"
        )
    missing = [name for name in cfg.regimes if name not in section(params, "regimes")]
    if missing:
        raise ConfigError(f"params: 'benchmark.regimes' has {missing}, which 'regimes' lacks")
    probe = benchmark_probe_config(params, cfg)
    if probe.sae_methods and probe.sae_pooling != "last":
        raise ConfigError(
            f"params: 'probe.sae_pooling' is '{probe.sae_pooling}'; the benchmark encodes the "
            "last token's hidden state with the SAE, so it needs 'last' (a mean or max of SAE "
            "codes needs every token's code: the probe stages compute those)"
        )
