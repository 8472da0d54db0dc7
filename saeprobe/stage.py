"""What every stage module shares: one entry point that turns bad input into one clear line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from saeprobe.errors import ConfigError

DATA = Path("data")
REPORTS = Path("reports")


def prepared_path(name: str) -> Path:
    return DATA / "prepared" / f"{name}.parquet"


def activations_dir(name: str) -> Path:
    return DATA / "activations" / name


CORPUS_TEXTS = DATA / "corpus" / "texts.parquet"
CORPUS_ACTIVATIONS = DATA / "corpus" / "activations"


def sae_dir(layer: int, name: str = "pretrained") -> Path:
    """data/sae/L<layer>/pretrained, or data/sae/L<layer>/<data set> once fine-tuned."""
    return DATA / "sae" / f"L{layer}" / name


def sae_report(layer: int, name: str = "pretrained") -> Path:
    return REPORTS / "sae" / f"L{layer}" / f"{name}.json"


def run(main: Callable[..., None]) -> None:
    """Call `main(*argv)`; a ConfigError ends the stage with its message and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(*sys.argv[1:])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def features_path(name: str, layer: int) -> Path:
    return DATA / "features" / name / f"L{layer}.h5"


def sae_variant_dir(name: str, layer: int, variant: str) -> Path:
    """The saved SAE behind `variant`: the pretrained one, or the one fine-tuned on `name`."""
    return sae_dir(layer, "pretrained" if variant == "pretrained" else name) / "sae"


def probes_path(name: str) -> Path:
    return DATA / "probes" / f"{name}.parquet"
