"""SAELens interop: write any SAE saeprobe can read as a SAELens folder (with the model and
hook it reads), and check that SAELens gives saeprobe's codes on real activations.

    python -m saeprobe.saelens data/sae/L6/pretrained/sae exported/gemma3-l6
    python -m saeprobe.saelens data/sae/L12/spam/sae exported/spam-l12 --model-name gemma-3-270m
    python -m saeprobe.saelens --check data/sae --activations data/activations/spam/tokens.h5

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

import torch

from saeprobe.errors import ConfigError
from saeprobe.sae.io import load_sae, save_sae
from saeprobe.store import TokenStore

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


def check_saelens(folder: str | Path, x: torch.Tensor) -> dict[str, float]:
    """Load `folder` in saeprobe and in SAELens (the `saelens` extra) and compare both on the
    raw activations `x`: max |difference| of the codes and of the reconstructions."""
    import sae_lens

    ours = load_sae(folder)
    theirs = sae_lens.SAE.load_from_disk(folder)
    with torch.no_grad():
        z_ours, z_theirs = ours.encode(x), theirs.encode(x)
        recon = (ours.decode(z_ours) - theirs.decode(z_theirs)).abs().max()
        return {
            "codes": float((z_ours - z_theirs).abs().max()),
            "reconstructions": float(recon),
            "active": float((z_ours > 0).sum(-1).float().mean()),
        }


def check_all(root: Path, activations: Path, tokens: int) -> list[tuple[Path, dict]]:
    """`check_saelens` for every SAE folder under `root`, on the first `tokens` tokens of
    its layer in the token store `activations`."""
    folders = sorted(p.parent for p in root.rglob("cfg.json"))
    if not folders:
        raise ConfigError(f"{root}: no SAE folder (cfg.json) under it")
    results = []
    with TokenStore(activations) as store:
        for folder in folders:
            layer = json.loads((folder / "cfg.json").read_text()).get("layer")
            if layer not in store.layers:
                raise ConfigError(f"{folder}: its layer {layer} is not in {activations}")
            x = torch.from_numpy(store.read(layer, slice(0, tokens))).float()
            results.append((folder, check_saelens(folder, x)))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Write an SAE as a SAELens folder, or check SAE folders against SAELens."
    )
    parser.add_argument("source", nargs="?", type=Path, help="an SAE folder or params.npz")
    parser.add_argument("dest", nargs="?", type=Path, help="the SAELens folder to write")
    parser.add_argument("--model-name", help="model name for SAELens' metadata")
    parser.add_argument("--layer", type=int, help="hidden-state index the SAE reads")
    parser.add_argument("--context-size", type=int, help="tokens per document it was trained on")
    parser.add_argument("--check", type=Path, help="compare every SAE under this folder ...")
    parser.add_argument("--activations", type=Path, help="... on this token store's tokens")
    parser.add_argument("--tokens", type=int, default=4096)
    args = parser.parse_args(argv)
    if args.check:
        if not args.activations:
            parser.error("--check needs --activations (a tokens.h5 of the pipeline)")
        for folder, diff in check_all(args.check, args.activations, args.tokens):
            print(
                f"{folder}: max |codes d| {diff['codes']:.3g}, max |reconstruction d| "
                f"{diff['reconstructions']:.3g} (mean L0 {diff['active']:.1f})"
            )
        return
    if not (args.source and args.dest):
        parser.error("give SOURCE and DEST, or --check")
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
