import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from saeprobe.models import LoadedModel
from saeprobe.sae import SAEConfig, build_sae
from saeprobe.sae.evaluate import ce_loss_recovered, reconstruction_metrics


@pytest.fixture(scope="module")
def tiny_lm(minilm):
    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=minilm.tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=128,
    )
    model = Gemma3ForCausalLM(cfg).eval()
    tok = minilm.tokenizer  # any tokenizer with BOS-like special tokens will do
    return LoadedModel("tiny", model, tok, "tiny", 3, 32, torch.device("cpu"), torch.float32)


def identity_sae(d):
    """A ReLU SAE that reconstructs exactly: latents +x and -x."""
    sae = build_sae(SAEConfig(d_in=d, d_sae=2 * d, architecture="relu"))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_perfect_reconstruction_recovers_all_of_the_loss(tiny_lm):
    texts = ["the cat sat on the mat", "dogs bark at night and sleep by day"]
    result = ce_loss_recovered(tiny_lm, identity_sae(32), 2, texts, max_length=16)
    assert result["ce_sae"] == pytest.approx(result["ce_clean"], rel=1e-5)
    assert result["ce_zero"] != pytest.approx(result["ce_clean"])
    assert result["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-4)


def test_useless_sae_recovers_nothing(tiny_lm):
    sae = build_sae(SAEConfig(d_in=32, d_sae=64, architecture="relu"))
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()  # reconstructs zeros: the same as ablation
    result = ce_loss_recovered(tiny_lm, sae, 1, ["a short text here"], max_length=16)
    assert result["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-4)


def test_reconstruction_metrics_by_hand():
    sae = identity_sae(4)
    x = torch.randn(100, 4)
    m = reconstruction_metrics(sae, x.split(30))
    assert m["tokens"] == 100 and m["fvu"] == pytest.approx(0.0, abs=1e-10)
    assert m["l0"] == pytest.approx(4.0)  # exactly one of +x_i, -x_i fires per coordinate
    dead = build_sae(SAEConfig(d_in=4, d_sae=8, architecture="relu"))
    with torch.no_grad():
        dead.b_enc.fill_(-1e6)
    assert reconstruction_metrics(dead, [x])["dead_share"] == 1.0


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_the_ce_on_target_positions_equals_the_ce_over_full_logits(tiny_lm, softcap):
    from torch.nn import functional as F

    from saeprobe.sae.evaluate import spliced_ce

    tiny_lm.model.config.final_logit_softcapping = softcap
    tok = tiny_lm.tokenizer
    enc = tok(
        ["the cat sat", "dogs bark at night and sleep by day"],
        padding=True,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    attention = enc["attention_mask"].bool()
    content = attention & (enc["special_tokens_mask"] == 0)
    ids = enc["input_ids"]
    ce, n = spliced_ce(tiny_lm, None, 2, ids, attention, content, "clean")
    logits = tiny_lm.model(input_ids=ids, attention_mask=attention).logits  # capped inside
    targets = ids[:, 1:].masked_fill(~content[:, 1:], -100)
    full = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), reduction="sum")
    assert n == int(content[:, 1:].sum()) > 0
    assert ce == pytest.approx(float(full), rel=1e-5)
    tiny_lm.model.config.final_logit_softcapping = None


def test_the_lm_loss_of_every_sae_of_a_layer_loads_the_model_once(tiny_lm, tmp_path, monkeypatch):
    from saeprobe.config import ModelConfig
    from saeprobe.sae import run
    from saeprobe.sae.io import save_sae

    useless = build_sae(SAEConfig(d_in=32, d_sae=64, architecture="relu"))
    with torch.no_grad():
        for p in useless.parameters():
            p.zero_()
    save_sae(identity_sae(32), tmp_path / "identity")
    save_sae(useless, tmp_path / "useless")
    loads = []
    monkeypatch.setattr(run, "is_causal_lm", lambda cfg: True)
    monkeypatch.setattr(run, "load_model", lambda *a, **k: loads.append(a) or tiny_lm)
    texts = ["the cat sat on the mat", "dogs bark at night and sleep by day"]
    saes = {
        "pretrained": (tmp_path / "identity", texts),
        "spam": (tmp_path / "useless", texts[:1]),
        "empty": (tmp_path / "identity", []),
    }
    out = run.lm_losses(ModelConfig(name="tiny"), 2, saes, max_length=16)
    assert len(loads) == 1
    assert out["pretrained"] == ce_loss_recovered(tiny_lm, identity_sae(32), 2, texts, 16)
    assert out["pretrained"]["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert out["spam"]["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-4)
    assert out["empty"] == {}


def test_the_lm_loss_stage_refuses_a_missing_sae_also_for_an_encoder(tmp_path, monkeypatch):
    from saeprobe.config import ModelConfig
    from saeprobe.errors import ConfigError
    from saeprobe.sae import run

    monkeypatch.setattr(run, "is_causal_lm", lambda cfg: False)
    saes = {"spam": (tmp_path / "nowhere", ["a text"])}
    with pytest.raises(ConfigError, match="nowhere does not exist"):
        run.lm_losses(ModelConfig(name="minilm"), 1, saes, max_length=16)
