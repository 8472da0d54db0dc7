"""Write any SAE saeprobe can read as a SAELens folder, with the model and hook it reads.

    python -m saeprobe.sae.export data/sae/L6/pretrained/sae exported/gemma3-l6
    python -m saeprobe.sae.export data/sae/L12/spam/sae exported/spam-l12 --model-name gemma-3-270m

The pipeline's own SAE folders are already SAELens folders; exporting adds what a SAELens
user wants beside them (the model's name as TransformerLens knows it, the context size)
and converts Gemma Scope params.npz files and older saeprobe folders. The default model is
Gemma 3 270M dequantized from its Q4_K_M GGUF: its activations are close to, not equal to,
those of the unquantized weights a hub name points to.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from saeprobe.sae.io import load_sae, save_sae

RECORD_KEYS = ("task_docs",)


def export_saelens(
    source: str | Path,
    dest: str | Path,
    *,
    model_name: str | None = None,
    layer: int | None = None,
    context_size: int | None = None,
) -> Path:
    """Write the SAE at `source` (any folder or file `load_sae` reads) to `dest` as a SAELens
    folder. `model_name` and `layer` override what the source records."""
    sae = load_sae(source)
    if layer is not None:
        sae.cfg.layer = layer
    metadata = {"model_name": model_name or sae.cfg.model}
    if context_size is not None:
        metadata["context_size"] = context_size
    save_sae(sae, dest, extra=kept_record(Path(source)), metadata=metadata)
    return Path(dest)


def kept_record(source: Path) -> dict:
    """What the pipeline recorded beside the weights (the fine-tuning's task_docs)."""
    cfg_file = source / "cfg.json"
    if not cfg_file.exists():
        return {}
    raw = json.loads(cfg_file.read_text())
    return {key: raw[key] for key in RECORD_KEYS if key in raw}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="an SAE folder or Gemma Scope params.npz")
    parser.add_argument("dest", type=Path, help="the SAELens folder to write")
    parser.add_argument("--model-name", help="model name for SAELens' metadata")
    parser.add_argument("--layer", type=int, help="hidden-state index the SAE reads")
    parser.add_argument("--context-size", type=int, help="tokens per document it was trained on")
    args = parser.parse_args(argv)
    folder = export_saelens(
        args.source,
        args.dest,
        model_name=args.model_name,
        layer=args.layer,
        context_size=args.context_size,
    )
    print(f"wrote {folder} (load it with sae_lens.SAE.load_from_disk('{folder}'))")


if __name__ == "__main__":
    main()
