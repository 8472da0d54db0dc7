"""Save and load SAEs: saeprobe's own and SAELens folders (cfg.json + sae_weights.safetensors,
the same key names), and Gemma Scope's params.npz."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from saeprobe.errors import ConfigError
from saeprobe.io import atomic_dir
from saeprobe.sae.base import SAEConfig, SparseAutoencoder
from saeprobe.sae.jumprelu import JumpReluSAE
from saeprobe.sae.relu import ReluSAE
from saeprobe.sae.topk import TopKSAE

WEIGHTS = "sae_weights.safetensors"
# SAELens calls the ReLU + L1 SAE "standard".
ARCH_NAMES = {"standard": "relu", "relu": "relu", "topk": "topk", "jumprelu": "jumprelu"}


def build_sae(cfg: SAEConfig, **kwargs) -> SparseAutoencoder:
    if cfg.architecture == "topk":
        if not 0 < cfg.k <= cfg.d_sae:
            raise ConfigError(f"params: 'sae.k' is {cfg.k}; expected 1 <= k <= width {cfg.d_sae}")
        return TopKSAE(cfg, **kwargs)
    if cfg.architecture == "relu":
        return ReluSAE(cfg, **kwargs)
    if cfg.architecture == "jumprelu":
        return JumpReluSAE(cfg)
    raise ConfigError(
        f"params: 'sae.architecture' is '{cfg.architecture}'; expected topk, relu or jumprelu"
    )


def save_sae(sae: SparseAutoencoder, folder: str | Path, extra: dict | None = None) -> None:
    cfg = sae.cfg
    tensors = {
        "W_enc": sae.W_enc.detach(),
        "W_dec": sae.decoder.detach(),
        "b_enc": sae.b_enc.detach(),
        "b_dec": sae.b_dec.detach(),
    }
    if isinstance(sae, JumpReluSAE):
        tensors["threshold"] = sae.threshold.detach()
    meta = {
        **cfg.__dict__,
        "architecture": cfg.architecture,
        "activation_fn_kwargs": {"k": cfg.k} if cfg.architecture == "topk" else {},
        "normalize_activations": "constant_scale" if cfg.input_scale != 1.0 else "none",
        "dtype": "float32",
        **(extra or {}),
    }
    with atomic_dir(folder) as tmp:
        save_file({k: v.float().contiguous().cpu() for k, v in tensors.items()}, tmp / WEIGHTS)
        (tmp / "cfg.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_sae(path: str | Path, d_in: int | None = None) -> SparseAutoencoder:
    """Load a saeprobe or SAELens folder, or a Gemma Scope params.npz (file or its folder)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"SAE {path} does not exist")
    npz = path if path.suffix == ".npz" else path / "params.npz"
    if npz.exists() and not (path / "cfg.json").exists():
        sae = _load_gemma_scope(npz)
    else:
        sae = _load_folder(path)
    if d_in is not None and sae.cfg.d_in != d_in:
        raise ConfigError(
            f"SAE {path} reads vectors of width {sae.cfg.d_in}, but the layer has width {d_in}"
        )
    return sae.eval()


def _load_folder(path: Path) -> SparseAutoencoder:
    cfg_file = path / "cfg.json"
    if not cfg_file.exists():
        raise ConfigError(f"SAE folder {path} has no cfg.json (nor a Gemma Scope params.npz)")
    raw = json.loads(cfg_file.read_text())
    weights = next((path / n for n in (WEIGHTS, "sae.safetensors") if (path / n).exists()), None)
    if weights is None:
        raise ConfigError(f"SAE folder {path} has no {WEIGHTS}")
    tensors = load_file(weights)
    arch = ARCH_NAMES.get(str(raw.get("architecture", "standard")))
    if arch is None:
        raise ConfigError(f"{cfg_file}: unknown architecture '{raw.get('architecture')}'")
    k = raw.get("k") or (raw.get("activation_fn_kwargs") or {}).get("k") or 1
    cfg = SAEConfig(
        d_in=int(raw["d_in"]),
        d_sae=int(raw["d_sae"]),
        architecture=arch,
        k=int(k),
        tied=bool(raw.get("tied", False)),
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        input_scale=float(raw.get("input_scale", 1.0)),
        layer=raw.get("layer"),
        model=raw.get("model"),
    )
    return _fill(build_sae(cfg), tensors, str(weights))


def _load_gemma_scope(npz: Path) -> SparseAutoencoder:
    with np.load(npz) as data:
        tensors = {k: torch.from_numpy(np.asarray(data[k], dtype=np.float32)) for k in data.files}
    if "W_enc" not in tensors:
        raise ConfigError(f"{npz}: missing key 'W_enc'; it has {sorted(tensors)}")
    d_in, d_sae = tensors["W_enc"].shape
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="jumprelu", apply_b_dec_to_input=False)
    return _fill(build_sae(cfg), tensors, str(npz))


def _fill(sae: SparseAutoencoder, tensors: dict[str, torch.Tensor], where: str):
    cfg = sae.cfg
    expected = {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "W_dec": (cfg.d_sae, cfg.d_in),
        "b_enc": (cfg.d_sae,),
        "b_dec": (cfg.d_in,),
    }
    if cfg.architecture == "jumprelu":
        expected["threshold"] = (cfg.d_sae,)
    for key, shape in expected.items():
        if key not in tensors:
            raise ConfigError(f"{where}: missing key '{key}'; it has {sorted(tensors)}")
        if tuple(tensors[key].shape) != shape:
            raise ConfigError(
                f"{where}: '{key}' has shape {tuple(tensors[key].shape)}, expected {shape}"
            )
    with torch.no_grad():
        for key in expected:
            if key == "W_dec" and cfg.tied:
                continue
            getattr(sae, key).copy_(tensors[key].float())
    return sae
