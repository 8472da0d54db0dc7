"""SAEs move both ways between saeprobe and SAELens, checked against the real library
(`make test` installs it: the `saelens` extra)."""

import json

import numpy as np
import pytest
import sae_lens
import torch
from safetensors.torch import save_file

from saeprobe.config import SAETrainConfig
from saeprobe.errors import ConfigError
from saeprobe.sae import SAEConfig, build_sae, load_sae, save_sae
from saeprobe.sae.train import new_sae, train_sae
from saeprobe.saelens import export_saelens, main

D_IN, D_SAE = 32, 1024
SAELENS = {
    "standard": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig, {}),
    "topk": (sae_lens.TopKSAE, sae_lens.TopKSAEConfig, {"k": 16}),
    "jumprelu": (sae_lens.JumpReLUSAE, sae_lens.JumpReLUSAEConfig, {}),
}


def random_saelens(architecture: str):
    sae_cls, cfg_cls, extra = SAELENS[architecture]
    torch.manual_seed(0)
    sae = sae_cls(cfg_cls(d_in=D_IN, d_sae=D_SAE, **extra))
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn_like(p) * (0.2 if name.startswith("W") else 0.5))
        if architecture == "jumprelu":
            sae.threshold.copy_(torch.rand(D_SAE) * 0.3)
    return sae


def same_outputs(ours, theirs, x: torch.Tensor) -> None:
    """Codes and reconstructions of both on the same raw activations, max |d| <= 1e-5."""
    with torch.no_grad():
        z_ours, z_theirs = ours.encode(x), theirs.encode(x)
        assert (z_ours > 0).sum() > 0, "a test where no latent fires checks nothing"
        assert (z_ours - z_theirs).abs().max() <= 1e-5
        x_ours, x_theirs = ours.decode(z_ours), theirs.decode(z_theirs)
        assert (x_ours - x_theirs).abs().max() <= 1e-5 * x_theirs.abs().max().clamp_min(1.0)


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_saelens_saeprobe_saelens_round_trip_keeps_codes_and_reconstructions(
    tmp_path, architecture
):
    original = random_saelens(architecture)
    original.save_model(tmp_path / "saelens")
    ours = load_sae(tmp_path / "saelens", d_in=D_IN)
    save_sae(ours, tmp_path / "saeprobe")
    back = sae_lens.SAE.load_from_disk(tmp_path / "saeprobe")
    assert type(back) is type(original)
    x = torch.randn(64, D_IN)
    same_outputs(ours, original, x)
    same_outputs(ours, back, x)
    for name, p in original.named_parameters():
        assert torch.equal(back.state_dict()[name], p), name


def trained_tiny_sae(architecture: str = "topk", tied: bool = False):
    """A pipeline-trained SAE on activations of norm ~100: its input scale is not 1."""
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(4096, D_IN)) * 18 + rng.normal(size=D_IN) * 5).astype(np.float32)
    cfg = SAETrainConfig(
        architecture=architecture, expansion=8, k=8, k_start=16, tied=tied, aux_k=16,
        batch_size=256, train_tokens=4096 * 2, dead_tokens=2048, lr=1e-3,
    )  # fmt: skip
    torch.manual_seed(0)
    sae = new_sae(cfg, D_IN, data[:1024], layer=3, model="tiny")
    batches = (torch.from_numpy(data[i : i + 256]) for _ in range(2) for i in range(0, 4096, 256))
    train_sae(sae, batches, cfg, progress=False)
    return sae, torch.from_numpy(data[:128])


@pytest.mark.parametrize("architecture,tied", [("topk", False), ("topk", True), ("relu", False)])
def test_a_pipeline_trained_sae_loads_in_saelens_with_the_same_codes(tmp_path, architecture, tied):
    sae, x = trained_tiny_sae(architecture, tied)
    assert sae.cfg.input_scale not in (0.0, 1.0)
    save_sae(sae, tmp_path / "sae")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "sae")
    assert theirs.cfg.normalize_activations == "none"
    same_outputs(sae, theirs, x)
    # ... and saeprobe reads back exactly what it wrote
    reloaded = load_sae(tmp_path / "sae", d_in=D_IN)
    assert reloaded.cfg.input_scale == sae.cfg.input_scale
    for name, p in sae.named_parameters():
        assert torch.equal(reloaded.state_dict()[name], p), name


@pytest.mark.parametrize("architecture", ["jumprelu", "topk"])
def test_scaled_saes_without_b_dec_on_the_input_match_saelens(tmp_path, architecture):
    torch.manual_seed(3)
    cfg = SAEConfig(
        d_in=D_IN, d_sae=256, architecture=architecture, k=12, input_scale=2.0**-5,
        apply_b_dec_to_input=False,
    )  # fmt: skip
    sae = build_sae(cfg)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 3.0)
        if architecture == "jumprelu":
            sae.threshold.uniform_(-0.5, 0.5)  # negative thresholds: a ReLU still applies
    save_sae(sae, tmp_path / "sae")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "sae")
    same_outputs(sae, theirs, torch.randn(64, D_IN) * 40)


def test_saved_folders_name_the_model_and_hook_for_saelens(tmp_path):
    sae, _ = trained_tiny_sae()
    save_sae(sae, tmp_path / "sae", metadata={"context_size": 128})
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "sae")
    assert theirs.cfg.metadata.model_name == "tiny"
    assert theirs.cfg.metadata.hook_name == "blocks.2.hook_resid_post"  # hidden_states[3]
    assert theirs.cfg.metadata.hf_hidden_states_index == 3
    assert theirs.cfg.metadata.context_size == 128


def test_a_published_sae_gets_the_layer_and_model_it_is_used_at(tmp_path):
    published = random_saelens("topk")  # SAELens folders need not name a layer or model
    published.save_model(tmp_path / "published")
    sae = load_sae(tmp_path / "published", d_in=D_IN)
    save_sae(sae, tmp_path / "sae", extra={"layer": 6, "model": "gemma3-270m"}, n_layers=18)
    metadata = sae_lens.SAE.load_from_disk(tmp_path / "sae").cfg.metadata
    assert metadata.model_name == "gemma3-270m"
    assert metadata.hook_name == "blocks.5.hook_resid_post"


def test_the_last_hidden_state_gets_no_transformerlens_hook(tmp_path):
    sae = build_sae(SAEConfig(d_in=D_IN, d_sae=64, k=4, layer=18, model="gemma3-270m"))
    save_sae(sae, tmp_path / "sae", n_layers=18)  # after the final norm: no hook matches
    metadata = json.loads((tmp_path / "sae/cfg.json").read_text())["metadata"]
    assert "hook_name" not in metadata and metadata["hf_hidden_states_index"] == 18


@pytest.mark.parametrize(
    "key,value",
    [
        ("rescale_acts_by_decoder_norm", True),
        ("normalize_activations", "layer_norm"),
        ("reshape_activations", "hook_z"),
    ],
)
def test_saelens_options_saeprobe_would_encode_differently_are_refused(tmp_path, key, value):
    random_saelens("topk").save_model(tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae/cfg.json").read_text())
    cfg[key] = value
    (tmp_path / "sae/cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=key):
        load_sae(tmp_path / "sae")


def legacy_folder(sae, folder):
    """An SAE as earlier saeprobe versions wrote it: unfolded weights, 'constant_scale'."""
    folder.mkdir()
    cfg = sae.cfg
    legacy = {
        "activation_fn_kwargs": {"k": cfg.k}, "apply_b_dec_to_input": True,
        "architecture": cfg.architecture, "d_in": cfg.d_in, "d_sae": cfg.d_sae,
        "dtype": "float32", "input_scale": cfg.input_scale, "k": cfg.k, "layer": cfg.layer,
        "model": cfg.model, "normalize_activations": "constant_scale", "tied": cfg.tied,
        "task_docs": 77,
    }  # fmt: skip
    (folder / "cfg.json").write_text(json.dumps(legacy))
    names = ("W_enc", "W_dec", "b_enc", "b_dec")
    state = {n: getattr(sae, n).detach().clone().contiguous() for n in names}
    save_file(state, folder / "sae_weights.safetensors")


def test_export_writes_a_saelens_folder_of_an_older_saeprobe_folder(tmp_path, capsys):
    sae, x = trained_tiny_sae()
    legacy_folder(sae, tmp_path / "old")
    with pytest.raises(ValueError, match="normalize_activations"):
        sae_lens.SAE.load_from_disk(tmp_path / "old")
    for name, p in load_sae(tmp_path / "old").named_parameters():
        assert torch.equal(p, dict(sae.named_parameters())[name]), name

    main([str(tmp_path / "old"), str(tmp_path / "new"), "--model-name", "tiny-lm"])
    assert "load_from_disk" in capsys.readouterr().out
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "new")
    assert theirs.cfg.metadata.model_name == "tiny-lm"
    same_outputs(sae, theirs, x)
    exported = json.loads((tmp_path / "new/cfg.json").read_text())
    assert exported["task_docs"] == 77  # the fine-tuning record travels with the SAE
    export_saelens(tmp_path / "old", tmp_path / "again", layer=5, context_size=64)
    metadata = json.loads((tmp_path / "again/cfg.json").read_text())["metadata"]
    assert metadata["hook_name"] == "blocks.4.hook_resid_post"
    assert metadata["context_size"] == 64


def test_the_check_command_compares_every_sae_under_a_folder_on_stored_tokens(tmp_path, capsys):
    from saeprobe.store import TokenStoreWriter

    sae, x = trained_tiny_sae()  # layer 3
    save_sae(sae, tmp_path / "sae/L3/pretrained/sae")
    save_sae(sae, tmp_path / "sae/L3/spam/sae")
    writer = TokenStoreWriter(tmp_path / "tokens.h5", [3], D_IN, "float32", {"max_length": 32})
    n = len(x)
    writer.append(
        ["doc"],
        [n],
        np.zeros(n, np.int32),
        np.arange(1, n + 1, dtype=np.int32),
        np.zeros((n, 2), np.int32),
        {3: x},
    )
    writer.close()
    main(["--check", str(tmp_path / "sae"), "--activations", str(tmp_path / "tokens.h5")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        codes = float(line.split("max |codes d| ")[1].split(",")[0])
        assert codes <= 1e-5, line
