"""`saeprobe predict` and `saeprobe explain`: a classifier the pipeline trained, on new text.

    saeprobe predict --dataset spam "Win a free cruise now!"
    saeprobe explain --dataset spam --top 5 "Win a free cruise now!"
    cat texts.txt | saeprobe predict --dataset spam --json

Texts come from the arguments, from --file (one per line) or from standard input. Run it in
the pipeline's folder (the classifier names its SAE by a path relative to it)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from transformers.utils import logging as transformers_logging

from saeprobe.classifier import load_classifier
from saeprobe.errors import ConfigError
from saeprobe.explain import explain, open_explainer
from saeprobe.stage import classifier_path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="saeprobe", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("predict", "print each text's predicted class and its probability"),
        ("explain", "also print the SAE latents that drove each prediction"),
    ):
        sub = commands.add_parser(name, help=help_text)
        which = sub.add_mutually_exclusive_group(required=True)
        which.add_argument("--dataset", help="the data set whose classifier to use")
        which.add_argument("--classifier", type=Path, help="a classifier file (.safetensors)")
        sub.add_argument("texts", nargs="*", help="texts to classify (default: stdin)")
        sub.add_argument("--file", type=Path, help="read texts from this file, one per line")
        sub.add_argument("--json", action="store_true", help="one JSON object per text")
        sub.add_argument("--device", default="auto", help="auto, cpu or cuda")
        if name == "explain":
            sub.add_argument("--top", type=int, default=5, help="latents per text")
            sub.add_argument("--spans", type=int, default=2, help="card spans per latent")
    return parser.parse_args(argv)


def read_texts(args: argparse.Namespace) -> list[str]:
    if args.texts and args.file:
        raise ConfigError("give texts as arguments or with --file, not both")
    if args.file:
        if not args.file.exists():
            raise ConfigError(f"--file {args.file} does not exist")
        lines = args.file.read_text(encoding="utf-8").splitlines()
    elif args.texts:
        lines = args.texts
    else:
        if sys.stdin.isatty():
            raise ConfigError("no texts: give them as arguments, with --file, or on stdin")
        lines = sys.stdin.read().splitlines()
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise ConfigError("no texts to classify (every line is empty)")
    return texts


def render(prediction, explained: bool) -> str:
    lines = [f"{prediction.label}\t{prediction.probability:.3f}\t{prediction.text}"]
    if explained:
        if not prediction.latents:
            lines.append("  (no latent of the probe fired for the predicted class)")
        for e in prediction.latents:
            lines.append(
                f"  latent {e.latent:>6d}  activation {e.activation:8.3f}  weight "
                f"{e.weight:+8.3f}  contribution {e.contribution:+8.3f}"
            )
            lines += [f"      {span}" for span in e.spans]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transformers_logging.disable_progress_bar()  # the model's loading bar is not output
    try:
        if getattr(args, "top", 1) < 1 or getattr(args, "spans", 0) < 0:
            raise ConfigError("--top must be at least 1 and --spans at least 0")
        path = args.classifier or classifier_path(args.dataset)
        texts = read_texts(args)
        classifier = load_classifier(path)
        explainer = open_explainer(classifier, args.device)
        explained = args.command == "explain"
        top = args.top if explained else 0
        predictions = explain(explainer, texts, top=top, spans=getattr(args, "spans", 0))
    except ConfigError as error:
        print(f"saeprobe: error: {error}", file=sys.stderr)
        return 2
    for prediction in predictions:
        if args.json:
            record = asdict(prediction)
            if not explained:
                record.pop("latents")
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(render(prediction, explained))
    return 0


if __name__ == "__main__":
    sys.exit(main())
