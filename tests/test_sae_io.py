import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from saeprobe.errors import ConfigError
from saeprobe.sae import JumpReluSAE, SAEConfig, build_sae, load_sae, save_sae
from saeprobe.sae.train import input_scale


@pytest.mark.parametrize("architecture", ["topk", "relu", "jumprelu"])
@pytest.mark.parametrize("tied", [False, True])
def test_save_load_round_trip(tmp_path, architecture, tied):
    torch.manual_seed(0)
    cfg = SAEConfig(d_in=8, d_sae=24, architecture=architecture, k=3, tied=tied, input_scale=0.25)
    sae = build_sae(cfg)
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae", d_in=8)
    x = torch.randn(10, 8)
    torch.testing.assert_close(loaded(x)[0], sae(x)[0])
    assert loaded.cfg.input_scale == 0.25 and loaded.cfg.tied == tied
    for name, p in sae.state_dict().items():  # a power-of-two scale unfolds exactly
        assert torch.equal(loaded.state_dict()[name], p), name


def test_a_scale_that_is_not_a_power_of_two_still_round_trips_closely(tmp_path):
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(d_in=8, d_sae=24, k=3, input_scale=2.5))
    save_sae(sae, tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae", d_in=8)
    x = torch.randn(10, 8) * 3
    torch.testing.assert_close(loaded.encode(x), sae.encode(x))
    torch.testing.assert_close(loaded(x)[0], sae(x)[0])


def test_training_picks_the_power_of_two_scale_nearest_sqrt_width_over_mean_norm():
    x = torch.randn(512, 64) * 300.0  # mean norm ~2400: sqrt(64) / 2400 = 2^-8.2
    assert input_scale(x, 64) == 2.0**-8
    assert input_scale(x / 300.0, 64) == 1.0


def test_loads_a_saelens_folder(tmp_path):
    d_in, d_sae = 8, 16
    torch.manual_seed(1)
    tensors = {
        "W_enc": torch.randn(d_in, d_sae),
        "W_dec": torch.randn(d_sae, d_in),
        "b_enc": torch.randn(d_sae),
        "b_dec": torch.randn(d_in),
    }
    folder = tmp_path / "saelens"
    folder.mkdir()
    save_file(tensors, folder / "sae_weights.safetensors")
    cfg = {
        "architecture": "standard",
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "hook_name": "blocks.6.hook_resid_post",
        "apply_b_dec_to_input": True,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(folder, d_in=d_in)
    x = torch.randn(4, d_in)
    z = torch.relu((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"])
    torch.testing.assert_close(sae.encode(x), z)
    torch.testing.assert_close(sae.decode(z), z @ tensors["W_dec"] + tensors["b_dec"])


def test_loads_a_gemma_scope_npz(tmp_path):
    d_in, d_sae = 8, 16
    rng = np.random.default_rng(0)
    params = {
        "W_enc": rng.normal(size=(d_in, d_sae)).astype(np.float32),
        "W_dec": rng.normal(size=(d_sae, d_in)).astype(np.float32),
        "b_enc": rng.normal(size=d_sae).astype(np.float32),
        "b_dec": rng.normal(size=d_in).astype(np.float32),
        "threshold": np.abs(rng.normal(size=d_sae)).astype(np.float32),
    }
    np.savez(tmp_path / "params.npz", **params)
    sae = load_sae(tmp_path / "params.npz", d_in=d_in)
    assert isinstance(sae, JumpReluSAE)
    x = rng.normal(size=(4, d_in)).astype(np.float32)
    pre = x @ params["W_enc"] + params["b_enc"]  # Gemma Scope does not subtract b_dec
    expected = pre * (pre > params["threshold"])
    np.testing.assert_allclose(
        sae.encode(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-5, atol=1e-5
    )
    assert load_sae(tmp_path, d_in=d_in).cfg.d_sae == d_sae  # the folder works too


def test_width_mismatch_is_named(tmp_path):
    save_sae(build_sae(SAEConfig(d_in=8, d_sae=16, k=2)), tmp_path / "sae")
    with pytest.raises(ConfigError, match="reads vectors of width 8, but the layer has width 640"):
        load_sae(tmp_path / "sae", d_in=640)


def test_missing_key_is_named(tmp_path):
    np.savez(
        tmp_path / "params.npz", W_enc=np.zeros((4, 8), np.float32), b_enc=np.zeros(8, np.float32)
    )
    with pytest.raises(ConfigError, match="missing key 'W_dec'"):
        load_sae(tmp_path / "params.npz")


def test_missing_sae_path(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_sae(tmp_path / "nope")
