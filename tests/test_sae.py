import itertools

import numpy as np
import pytest
import torch

from saeprobe.config import FinetuneConfig, SAETrainConfig
from saeprobe.errors import ConfigError
from saeprobe.sae import SAEConfig, build_sae
from saeprobe.sae.base import TrainStep
from saeprobe.sae.evaluate import reconstruction_metrics
from saeprobe.sae.finetune import (
    finetune_loss,
    finetune_sae,
    task_dead_latents,
    token_statistics,
)
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


def two_latent_sae() -> torch.nn.Module:
    """Latent 0 reads and writes e0; latent 1 writes e1 but its pre-activation is
    -x[1] - 0.1, negative on every token whose x[1] >= 0."""
    sae = build_sae(SAEConfig(d_in=4, d_sae=2, architecture="topk", k=1))
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.W_enc[0, 0] = 1.0
        sae.W_enc[1, 1] = -1.0
        sae.b_enc.copy_(torch.tensor([0.0, -0.1]))
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.eye(2, 4))
    return sae


def two_direction_task(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 4)
    x[:, 0] = torch.rand(n, generator=g) + 0.5
    x[:, 1] = torch.rand(n, generator=g) + 0.5
    return x


def test_dead_means_never_positive_before_the_relu():
    sae = two_latent_sae()
    x = two_direction_task()
    assert task_dead_latents(sae, x.split(100)).tolist() == [False, True]
    x[3, 1] = -0.5  # one token where latent 1's pre-activation is 0.4
    assert task_dead_latents(sae, x.split(100)).tolist() == [False, False]


def test_dead_latents_are_those_never_positive_in_any_batch():
    torch.manual_seed(0)
    sae = build_sae(SAEConfig(d_in=16, d_sae=256, k=4))
    with torch.no_grad():
        sae.b_enc.copy_(torch.linspace(-12.0, 2.0, 256))  # from never firing to always
    x = torch.randn(1000, 16)
    want = ~(sae.pre_acts(x) > 0).any(0)
    assert 0 < int(want.sum()) < 256
    assert torch.equal(task_dead_latents(sae, x.split(64)), want)
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every latent fires on the first batch: the pass stops there
    assert not task_dead_latents(sae, x.split(64)).any()


def test_one_pass_gives_reconstruction_dead_latents_and_latents_in_the_code():
    sae = two_latent_sae()
    x = two_direction_task()
    x[3, 1] = -0.5  # latent 1's pre-activation is 0.4 here, below latent 0's: not in the code
    stats = token_statistics(sae, x.split(100))
    assert stats.reconstruction == reconstruction_metrics(sae, x.split(100))
    assert stats.dead.tolist() == task_dead_latents(sae, x.split(100)).tolist() == [False, False]
    assert stats.in_code.tolist() == [True, False]
    x[3, 0] = 0.1  # now latent 1 wins the top-1 on that token
    assert token_statistics(sae, x.split(100)).in_code.tolist() == [True, True]


def test_a_latent_negative_on_every_task_token_learns_through_its_raw_pre_activation():
    sae = two_latent_sae()
    x = two_direction_task()
    dead = task_dead_latents(sae, [x])
    loss, _ = finetune_loss(sae, x, dead, dead_weight=1.0)
    loss.backward()
    assert sae.W_enc.grad[1, 1] != 0  # a ReLU on the dead branch would pass no gradient
    sae.zero_grad()
    ft = FinetuneConfig(lr=3e-2, epochs=4, batch_size=64, dead_weight=1.0)
    result = finetune_sae(sae, lambda: x.split(64), lambda: x.split(256), ft, progress=False)
    # Dead before the first epoch; fires (so no longer dead) once the dead branch has
    # learned that e1 is what the live latent misses.
    assert result["history"][0]["dead_latents"] == 1
    assert result["dead_latents_after"] == 0
    assert (sae.pre_acts(x)[:, 1] > 0).any()


def test_a_task_on_which_no_latent_is_dead_is_fine_tuned_on_the_live_loss():
    torch.manual_seed(0)
    x, _ = synthetic(n=2048, d=16, atoms=16)
    cfg = SAETrainConfig(expansion=1, k=8, batch_size=256, train_tokens=256 * 50, aux_k=0)
    sae = new_sae(cfg, 16, x[:1024].numpy(), layer=0, model="synthetic")
    with torch.no_grad():
        sae.b_enc.add_(100.0)  # every pre-activation is positive on some token
    ft = FinetuneConfig(lr=1e-3, epochs=2, batch_size=256)
    dead = torch.zeros(16, dtype=torch.bool)
    before = finetune_loss(sae, x, dead, ft.dead_weight)[0].item()
    result = finetune_sae(sae, lambda: x.split(256), lambda: x.split(1024), ft, progress=False)
    assert result["dead_latents"] == 0 and result["dead_latents_after"] == 0
    assert finetune_loss(sae, x, dead, ft.dead_weight)[0].item() < before


def test_finetune_needs_a_topk_sae():
    sae = build_sae(SAEConfig(d_in=8, d_sae=16, architecture="relu"))
    with pytest.raises(ConfigError, match="needs a TopK SAE"):
        finetune_sae(sae, lambda: [], lambda: [], FinetuneConfig(), False)


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


def test_the_per_token_loss_weighs_each_token_by_its_own_norm():
    torch.manual_seed(0)
    x, _ = synthetic(n=256, d=16, atoms=32)
    x[:128] *= 10.0  # loud tokens dominate the batch FVU, not the per-token loss
    cfg = SAETrainConfig(expansion=2, k=4, aux_k=0, normalize=False, loss="per_token")
    sae = new_sae(cfg, 16, x.numpy(), layer=0, model="synthetic")
    loss, figures = sae.loss(x)
    x_hat = sae.decode(sae.encode(x))
    expected = ((x - x_hat).pow(2).sum(1) / x.pow(2).sum(1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert figures["fvu"] != pytest.approx(loss.item(), rel=1e-2)
