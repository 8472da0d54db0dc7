"""Save and load SAEs: SAELens folders (cfg.json + sae_weights.safetensors), which saeprobe
writes so that SAELens loads them as they are, and Gemma Scope's params.npz.

saeprobe encodes `(x * s - b_dec) W_enc + b_enc` with an input scale `s`; SAELens has no such
scale, so a saved folder holds it folded into the weights (`s W_enc`, `b_dec / s`, `W_dec / s`):
SAELens then gives the same codes and reconstructions on raw activations, and saeprobe
unfolds the weights on load. Training picks a power of two for `s`, so both are exact.
"""

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
SAELENS_ARCH = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}
# The SAELens config format written (>= 6.0: read without its pre-6 key translation).
SAELENS_FORMAT = "6.0.0"
# cfg.json's marker that the input scale is folded into the weights.
FOLDED = "input_scale_folded"


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


def save_sae(
    sae: SparseAutoencoder,
    folder: str | Path,
    extra: dict | None = None,
    metadata: dict | None = None,
    n_layers: int | None = None,
) -> None:
    """Write `sae` as a folder SAELens' `SAE.load_from_disk` reads as it is (the input scale
    folded into the weights); saeprobe's own fields go into extra cfg.json keys SAELens
    ignores, `extra` too (its `layer` and `model` override the SAE's). `metadata` joins
    SAELens' metadata block (model_name, hook_name, ...); `n_layers`, the model's block
    count, tells whether the layer is the last one, which has no TransformerLens hook."""
    cfg = sae.cfg
    ours = {
        "k": cfg.k,
        "tied": cfg.tied,
        "input_scale": cfg.input_scale,
        FOLDED: True,
        "layer": cfg.layer,
        "model": cfg.model,
        **(extra or {}),
    }
    meta = {
        # SAELens' fields
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "architecture": SAELENS_ARCH[cfg.architecture],
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": SAELENS_FORMAT,
            "sae_lens_training_version": None,  # trained by saeprobe, not SAELens
            "model_name": ours["model"],
            **sae_lens_hook(ours["layer"], n_layers),
            **(metadata or {}),
        },
        # saeprobe's
        **ours,
    }
    if cfg.architecture == "topk":
        meta["rescale_acts_by_decoder_norm"] = False
    with atomic_dir(folder) as tmp:
        save_file(folded_tensors(sae), tmp / WEIGHTS)
        (tmp / "cfg.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def folded_tensors(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    """SAELens' tensors of `sae`: its input scale folded into the weights."""
    s = float(sae.cfg.input_scale)
    tensors = {
        "W_enc": sae.W_enc.detach() * s,
        "W_dec": sae.decoder.detach() / s,
        "b_enc": sae.b_enc.detach(),
        "b_dec": sae.b_dec.detach() / s,
    }
    if isinstance(sae, JumpReluSAE):
        tensors["threshold"] = sae.threshold.detach()  # on pre-activations, which folding keeps
    return {k: v.float().contiguous().cpu() for k, v in tensors.items()}


def sae_lens_hook(layer: int | None, n_layers: int | None = None) -> dict:
    """Where the SAE reads the model, in SAELens' metadata: the index into Hugging Face's
    `hidden_states` that saeprobe uses (0: the embedding; L: the output of block L - 1), and
    TransformerLens' name for it. The last index (`n_layers`) comes after the final norm,
    which no TransformerLens hook matches, so it gets no `hook_name`."""
    if layer is None:
        return {}
    out = {"hf_hidden_states_index": layer, "hook_head_index": None}
    if n_layers is None or layer < n_layers:
        out["hook_name"] = (
            "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"
        )
    return out


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
    check_supported(raw, cfg_file)
    k = raw.get("k") or (raw.get("activation_fn_kwargs") or {}).get("k") or 1
    scale = float(raw.get("input_scale", 1.0))
    cfg = SAEConfig(
        d_in=int(raw["d_in"]),
        d_sae=int(raw["d_sae"]),
        architecture=arch,
        k=int(k),
        tied=bool(raw.get("tied", False)),
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        input_scale=scale,
        layer=raw.get("layer"),
        model=raw.get("model"),
    )
    if raw.get(FOLDED):
        tensors = unfold(tensors, scale)
    return _fill(build_sae(cfg), tensors, str(weights))


# SAELens options saeprobe does not implement, with the value that means "off". An SAE that
# uses one would encode differently here, so loading it is refused rather than approximated.
UNSUPPORTED = {
    "rescale_acts_by_decoder_norm": False,
    "reshape_activations": "none",
    "finetuning_scaling_factor": False,
}
# "constant_scale": folders written by earlier saeprobe versions (unfolded, with input_scale).
NORMALIZATIONS = (None, "none", "constant_scale")


def check_supported(raw: dict, cfg_file: Path) -> None:
    norm = raw.get("normalize_activations")
    if norm not in NORMALIZATIONS:
        raise ConfigError(
            f"{cfg_file}: normalize_activations '{norm}' is not supported; saeprobe reads SAEs "
            "whose inputs are raw activations ('none')"
        )
    for key, off in UNSUPPORTED.items():
        if raw.get(key, off) not in (off, None):
            raise ConfigError(
                f"{cfg_file}: {key} {raw[key]!r} is not supported (expected {off!r}); saeprobe "
                "would encode this SAE differently from SAELens"
            )


def unfold(tensors: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """saeprobe's tensors from SAELens' folded ones (exact for a power-of-two scale)."""
    out = dict(tensors)
    out["W_enc"] = out["W_enc"] / scale
    for key in ("W_dec", "b_dec"):
        if key in out:
            out[key] = out[key] * scale
    return out


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
