from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.manual_seed(0)


@pytest.fixture(scope="session")
def minilm():
    from saeprobe.config import ModelConfig
    from saeprobe.models import load_model

    return load_model(ModelConfig(name="minilm", dtype="float32", device="cpu"))
