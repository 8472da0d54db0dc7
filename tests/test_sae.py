import itertools

import numpy as np
import pytest
import torch

from saeprobe.config import FinetuneConfig, SAETrainConfig
from saeprobe.errors import ConfigError
from saeprobe.sae import SAEConfig, build_sae
from saeprobe.sae.base import TrainStep
from saeprobe.sae.finetune import finetune_loss, finetune_sae, task_dead_latents
from saeprobe.sae.train import annealed_k, new_sae, train_sae


def synthetic(n=20000, d=32, atoms=64, active=3, seed=0):
    """Data made of known sparse directions: each row mixes `active` of `atoms` unit vectors."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(atoms, d, generator=g)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(atoms, generator=g)[:active] for _ in range(n)])
    coef = torch.rand(n, active, generator=g) + 0.5
    x = torch.zeros(n, d)
    for j in range(active):
        x += coef[:, j : j + 1] * dictionary[idx[:, j]]
    return x, dictionary


def batches_of(x, batch_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    while True:
        for chunk in torch.randperm(len(x), generator=g).split(batch_size):
            if len(chunk) == batch_size:
                yield x[chunk]


@pytest.mark.parametrize("architecture", ["topk", "relu", "jumprelu"])
def test_encoding_scales_inputs_and_decoding_undoes_the_scale(architecture):
    cfg = SAEConfig(d_in=16, d_sae=48, architecture=architecture, k=4, input_scale=2.5)
    sae = build_sae(cfg)
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    x = torch.randn(5, 16)
    pre = (x * 2.5 - sae.b_dec) @ sae.W_enc + sae.b_enc
    torch.testing.assert_close(sae.pre_acts(x), pre)
    z = sae.encode(x)
    torch.testing.assert_close(sae.decode(z), (z @ sae.decoder + sae.b_dec) / 2.5)


def test_topk_keeps_exactly_k_nonzeros():
    sae = build_sae(SAEConfig(d_in=16, d_sae=64, k=5))
    with torch.no_grad():
        sae.b_enc.fill_(10.0)  # every pre-activation positive: only the top-k may survive
    z = sae.encode(torch.randn(50, 16))
    assert ((z != 0).sum(-1) == 5).all()


def test_k_larger_than_width_is_rejected():
    with pytest.raises(ConfigError, match=r"'sae.k' is 100; expected 1 <= k <= width 64"):
        build_sae(SAEConfig(d_in=16, d_sae=64, k=100))


def test_tied_weights_stay_tied_through_training():
    x, _ = synthetic(n=2048, d=16, atoms=32)
    cfg = SAETrainConfig(expansion=2, k=3, tied=True, batch_size=64, train_tokens=64 * 20, lr=1e-2)
    sae = new_sae(cfg, 16, x[:512].numpy(), layer=0, model="synthetic")
    train_sae(sae, batches_of(x, 64), cfg, progress=False)
    assert not hasattr(sae, "W_dec")
    torch.testing.assert_close(sae.decoder, sae.W_enc.T)


def test_k_is_annealed_linearly_to_its_target():
    cfg = SAETrainConfig(k=32, k_start=128, k_anneal_fraction=0.5)
    assert [annealed_k(cfg, f) for f in (0.0, 0.25, 0.5, 0.9)] == [128, 80, 32, 32]


def test_topk_training_recovers_known_sparse_directions():
    torch.manual_seed(0)
    x, dictionary = synthetic()
    cfg = SAETrainConfig(
        expansion=4,
        k=3,
        batch_size=256,
        train_tokens=256 * 1500,
        lr=4e-3,
        aux_k=32,
        dead_tokens=5000,
        normalize=False,
    )
    sae = new_sae(cfg, 32, x[:4096].numpy(), layer=0, model="synthetic")
    _, before = sae.loss(x[:2048], TrainStep(k=3))
    train_sae(sae, batches_of(x, 256), cfg, progress=False)
    _, after = sae.loss(x[:2048], TrainStep(k=3))
    assert after["fvu"] < 0.1 < before["fvu"]
    cos = (dictionary @ (sae.decoder / sae.decoder.norm(dim=1, keepdim=True)).T).max(1).values
    assert (cos > 0.9).float().mean() > 0.8


def test_relu_training_drives_fvu_down():
    torch.manual_seed(0)
    x, _ = synthetic(n=8192)
    cfg = SAETrainConfig(
        architecture="relu",
        expansion=4,
        l1_coefficient=0.05,
        batch_size=256,
        train_tokens=256 * 300,
        lr=4e-3,
        normalize=False,
    )
    sae = new_sae(cfg, 32, x[:4096].numpy(), layer=0, model="synthetic")
    _, before = sae.loss(x[:2048])
    train_sae(sae, batches_of(x, 256), cfg, progress=False)
    _, after = sae.loss(x[:2048])
    assert after["fvu"] < 0.5 * before["fvu"]
    assert after["l0"] < 128


def test_divergence_stops_with_step_and_learning_rate():
    x = torch.full((64, 16), float("nan"))
    cfg = SAETrainConfig(expansion=2, k=3, batch_size=64, train_tokens=640, lr=3e-4)
    sae = new_sae(cfg, 16, torch.randn(64, 16).numpy(), layer=0, model="synthetic")
    with pytest.raises(
        ConfigError, match=r"diverged at step 0 .* learning rate 0.0003; lower .sae.lr."
    ):
        train_sae(sae, itertools.repeat(x), cfg, progress=False)


def test_finetuning_lowers_the_task_loss_and_keeps_dead_latents_fixed():
    torch.manual_seed(0)
    x, _ = synthetic(n=4096, d=32, atoms=64)
    cfg = SAETrainConfig(
        expansion=4, k=4, batch_size=256, train_tokens=256 * 200, lr=4e-3, aux_k=0, normalize=False
    )
    sae = new_sae(cfg, 32, x[:2048].numpy(), layer=0, model="synthetic")
    train_sae(sae, batches_of(x, 256), cfg, progress=False)
    task, _ = synthetic(n=2048, d=32, atoms=64, active=3, seed=7)  # other directions
    dead = task_dead_latents(sae, task.split(512))
    assert dead.any() and not dead.all()
    ft = FinetuneConfig(lr=1e-3, epochs=3, batch_size=256)
    before = finetune_loss(sae, task, dead, ft.dead_weight)[0].item()
    enc_dead_before = sae.W_enc[:, dead].detach().clone()
    result = finetune_sae(sae, lambda: task.split(256), dead, ft, progress=False)
    after = finetune_loss(sae, task, dead, ft.dead_weight)[0].item()
    assert after < before
    # The dead latents learn to reconstruct what the live ones miss.
    assert result["history"][-1]["dead_loss"] < result["history"][0]["dead_loss"]
    assert not torch.equal(sae.W_enc[:, dead], enc_dead_before)


def test_a_task_on_which_every_latent_fires_is_fine_tuned_on_the_live_loss():
    torch.manual_seed(0)
    x, _ = synthetic(n=2048, d=16, atoms=16)
    cfg = SAETrainConfig(expansion=1, k=8, batch_size=256, train_tokens=256 * 50, aux_k=0)
    sae = new_sae(cfg, 16, x[:1024].numpy(), layer=0, model="synthetic")
    dead = torch.zeros(16, dtype=torch.bool)
    ft = FinetuneConfig(lr=1e-3, epochs=2, batch_size=256)
    before = finetune_loss(sae, x, dead, ft.dead_weight)[0].item()
    result = finetune_sae(sae, lambda: x.split(256), dead, ft, progress=False)
    assert result["dead_latents"] == 0
    assert finetune_loss(sae, x, dead, ft.dead_weight)[0].item() < before


def test_finetune_needs_a_topk_sae():
    sae = build_sae(SAEConfig(d_in=8, d_sae=16, architecture="relu"))
    with pytest.raises(ConfigError, match="needs a TopK SAE"):
        finetune_sae(sae, lambda: [], torch.ones(16, dtype=torch.bool), FinetuneConfig(), False)


def test_nan_activations_in_the_store_are_reported(tmp_path):
    from saeprobe.sae.tokens import read_docs
    from saeprobe.store import TokenStore, TokenStoreWriter

    writer = TokenStoreWriter(tmp_path / "t.h5", [1], 4, "float32", {"max_length": 8})
    acts = torch.tensor([[1.0, 2.0, float("nan"), 0.0]])
    writer.append(
        ["a"],
        [1],
        np.zeros(1, np.int32),
        np.zeros(1, np.int32),
        np.zeros((1, 2), np.int32),
        {1: acts},
    )
    writer.close()
    with TokenStore(tmp_path / "t.h5") as store, pytest.raises(ConfigError, match="NaN"):
        read_docs(store, 1, np.array([0]))


def test_decoder_gradient_keeps_no_component_along_its_rows():
    sae = build_sae(SAEConfig(d_in=8, d_sae=16, k=2))
    sae.W_dec.grad = torch.randn(16, 8)
    sae.remove_parallel_decoder_grad()
    torch.testing.assert_close((sae.W_dec.grad * sae.W_dec).sum(1), torch.zeros(16))
