"""What every stage module shares: the paths of every stage output (named here only), and
one entry point that turns bad input, bad usage and Ctrl-C into one line and an exit code."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from saeprobe.errors import ConfigError

DATA = Path("data")
REPORTS = Path("reports")
PARAMS_VALID = DATA / "params_valid.json"  # the check_params stage's marker
CORPUS_TEXTS = DATA / "corpus" / "texts.parquet"
CORPUS_ACTIVATIONS = DATA / "corpus" / "activations"
METRICS = REPORTS / "metrics.json"  # the data sets' sizes
HEADLINE = REPORTS / "headline.json"  # the handful of numbers `dvc exp show` lists
REPORT_PAGE = REPORTS / "report.html"
PROBE_RESULTS = REPORTS / "probes" / "results.parquet"
PROBE_METRICS = REPORTS / "probes" / "metrics.json"
PLOTS = REPORTS / "plots"
TRANSFER_REPORTS = REPORTS / "transfer"
MULTITOKEN_REPORTS = REPORTS / "multitoken"
CROSS_MODEL_REPORTS = REPORTS / "cross_model"
TIMING = REPORTS / "timing"
BENCHMARK_RESULTS = REPORTS / "benchmark" / "results.parquet"
BENCHMARK_METRICS = REPORTS / "benchmark" / "metrics.json"
# Not under reports/plots: the report stage reads that folder, and the benchmark is not its.
BENCHMARK_PLOTS = REPORTS / "benchmark" / "plots"


def prepared_path(name: str) -> Path:
    return DATA / "prepared" / f"{name}.parquet"


def activations_dir(name: str) -> Path:
    return DATA / "activations" / name


def tokens_path(name: str) -> Path:
    return activations_dir(name) / "tokens.h5"


def pooled_path(name: str) -> Path:
    return activations_dir(name) / "pooled.parquet"


def sae_dir(layer: int, name: str = "pretrained") -> Path:
    """data/sae/L<layer>/pretrained, or data/sae/L<layer>/<data set> once fine-tuned."""
    return DATA / "sae" / f"L{layer}" / name


def sae_report(layer: int, name: str = "pretrained") -> Path:
    return REPORTS / "sae" / f"L{layer}" / f"{name}.json"


def sae_ce_report(layer: int) -> Path:
    """The spliced-in LM loss of every SAE of a layer (sae_ce@<layer>), by SAE name."""
    return REPORTS / "sae" / f"ce_L{layer}.json"


def sae_variant_dir(name: str, layer: int, variant: str) -> Path:
    """The saved SAE behind `variant`: the pretrained one, or the one fine-tuned on `name`."""
    return sae_dir(layer, "pretrained" if variant == "pretrained" else name) / "sae"


def features_path(name: str, layer: int) -> Path:
    return DATA / "features" / name / f"L{layer}.h5"


def probes_path(name: str) -> Path:
    return DATA / "probes" / f"{name}.parquet"


def classifier_path(name: str) -> Path:
    """The SAE probe kept for `name`, refit and saved for `saeprobe predict` / `explain`."""
    return DATA / "classifiers" / f"{name}.safetensors"


def classifier_metrics_path(name: str) -> Path:
    return REPORTS / "classifiers" / f"{name}.json"


def activation_stats_path(name: str) -> Path:
    return activations_dir(name) / "stats.json"


def unintended_path(name: str, layer: int) -> Path:
    """The judges' decisions on the latents of the SAE fine-tuned on `name`."""
    return DATA / "unintended" / name / f"L{layer}.parquet"


def llm_cache_path(name: str, layer: int) -> Path:
    """The LLM judge's answers, kept between runs so that a rerun asks nothing twice."""
    return DATA / "unintended" / name / f"L{layer}.llm_cache.json"


def selfreg_path(name: str, layer: int) -> Path:
    return DATA / "selfreg" / name / f"L{layer}.parquet"


def selfreg_report(name: str, layer: int, kind: str) -> Path:
    """reports/selfreg/<data set>/L<layer>/<kind>.json: unintended (judges) or metrics."""
    return REPORTS / "selfreg" / name / f"L{layer}" / f"{kind}.json"


def selfreg_plots(name: str, layer: int) -> Path:
    return PLOTS / "selfreg" / f"{name}-L{layer}"


def multitoken_path(name: str) -> Path:
    """The multi-token probes' fits of one data set, rows of the probes' results table."""
    return DATA / "multitoken" / f"{name}.parquet"


def multitoken_report(name: str) -> Path:
    return MULTITOKEN_REPORTS / f"{name}.json"


def transfer_path(pair: str) -> Path:
    """Every fit of one transfer pair, rows of the probes' results table."""
    return DATA / "transfer" / f"{pair}.parquet"


def transfer_report(pair: str) -> Path:
    return TRANSFER_REPORTS / f"{pair}.json"


def transfer_plot(pair: str) -> Path:
    return PLOTS / "transfer" / f"{pair}.csv"


def behaviour_path(name: str) -> Path:
    """The second model's answers to one data set's items, and its hidden states."""
    return DATA / "behaviour" / f"{name}.parquet"


def behaviour_report(name: str) -> Path:
    return CROSS_MODEL_REPORTS / f"{name}.behaviour.json"


def cross_model_path(name: str) -> Path:
    """Every cross-model fit of one data set, rows of the probes' results table."""
    return DATA / "cross_model" / f"{name}.parquet"


def cross_model_report(name: str) -> Path:
    return CROSS_MODEL_REPORTS / f"{name}.json"


def cross_model_plot(name: str) -> Path:
    return PLOTS / "cross_model" / f"{name}.csv"


def benchmark_path(task: str) -> Path:
    """One task's probe fits of the full benchmark (benchmark@<task>)."""
    return DATA / "benchmark" / f"{task}.parquet"


def timing_path(stage: str, name: str) -> Path:
    """Seconds and throughput of one stage run: a metric, never an input of another stage."""
    return TIMING / stage / f"{name}.json"


def layer_arg(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"the layer argument must be an integer, got '{value}'") from None


def run(main: Callable[..., None]) -> None:
    """Call `main(*argv)`. Bad input (ConfigError) and bad usage end the stage with one line
    and exit code 2; Ctrl-C with one line and 130. Outputs are written atomically, so an
    interrupted stage leaves the previous ones untouched."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:]
    params = list(inspect.signature(main).parameters)
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    prog = f"python -m {spec.name}" if spec else sys.argv[0]
    if len(args) != len(params):
        usage = " ".join(f"<{p}>" for p in params)
        print(f"usage: {prog} {usage}".rstrip(), file=sys.stderr)
        sys.exit(2)
    try:
        main(*args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output was changed", file=sys.stderr)
        sys.exit(130)
