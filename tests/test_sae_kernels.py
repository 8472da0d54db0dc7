from unittest.mock import patch

import pytest
import torch

from saeprobe.sae import finetune
from saeprobe.sae.base import (
    SAEConfig,
    TrainStep,
    normalized_mse,
    sparse_decode,
    topk_among,
)
from saeprobe.sae.finetune import finetune_loss
from saeprobe.sae.kernels import selected_pre_acts, topk_encode
from saeprobe.sae.topk import TopKSAE


@pytest.mark.parametrize("use_pre", [False, True])
def test_sparse_backward_equals_autograd_through_dense_topk(use_pre):
    torch.manual_seed(0)
    x = torch.randn(64, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(16, 48, dtype=torch.float64, requires_grad=True)
    b = torch.randn(48, dtype=torch.float64, requires_grad=True)
    b_dec = torch.randn(16, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(64, 5, dtype=torch.float64)
    pre_weights = torch.randn(64, 48, dtype=torch.float64)

    def loss(values, pre):
        out = (values * weights).sum()
        return out + (pre * pre_weights).sum() if use_pre else out

    values, indices, pre = topk_encode(x, b_dec, w, b, 5)
    loss(values, pre).backward()
    params = (x, b_dec, w, b)
    fused = [t.grad.clone() for t in params]
    for t in params:
        t.grad = None
    pre_ref = (x - b_dec) @ w + b
    values_ref = pre_ref.gather(1, indices).relu()
    loss(values_ref, pre_ref).backward()
    for got, want in zip(fused, [t.grad for t in params], strict=True):
        torch.testing.assert_close(got, want)


def test_selected_pre_acts_backward_equals_autograd_through_the_dense_matmul():
    torch.manual_seed(1)
    x = torch.randn(32, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 24, dtype=torch.float64, requires_grad=True)
    b = torch.randn(24, dtype=torch.float64, requires_grad=True)
    b_dec = torch.randn(8, dtype=torch.float64, requires_grad=True)
    # Two branches may pick the same latent of a token: its gradients must add up.
    indices = torch.cat([torch.randint(0, 24, (32, 4)), torch.randint(0, 24, (32, 3))], dim=1)
    indices[:, -1] = indices[:, 0]
    weights = torch.randn(32, 7, dtype=torch.float64)
    with torch.no_grad():
        pre = (x - b_dec) @ w + b
    (selected_pre_acts(x, b_dec, w, b, pre, indices) * weights).sum().backward()
    params = (x, b_dec, w, b)
    sparse = [t.grad.clone() for t in params]
    for t in params:
        t.grad = None
    (((x - b_dec) @ w + b).gather(1, indices) * weights).sum().backward()
    for got, want in zip(sparse, [t.grad for t in params], strict=True):
        torch.testing.assert_close(got, want)


def dense_selected(x, b_dec, W_enc, b_enc, _pre, indices):
    """`selected_pre_acts` by plain autograd: the whole product, then the gather."""
    return ((x - b_dec) @ W_enc + b_enc).gather(1, indices)


def dense_aux_loss(sae, x, dead):
    """AuxK by plain autograd through every pre-activation."""
    xs = x * sae.scale
    pre = sae.pre_acts(x)
    values, indices = sae.topk(pre)
    x_hat = sparse_decode(indices, values, sae.decoder) + sae.b_dec
    aux_idx = topk_among(pre.detach(), dead, sae.aux_k)
    aux = sparse_decode(aux_idx, pre.gather(1, aux_idx).relu(), sae.decoder)
    return normalized_mse((xs - x_hat).detach(), aux)


def gradients(sae, loss) -> list[torch.Tensor]:
    sae.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in sae.parameters()]


@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_sparse_finetune_loss_has_the_dense_loss_value_and_gradients(apply_b_dec):
    torch.manual_seed(2)
    cfg = SAEConfig(d_in=12, d_sae=40, k=4, input_scale=0.5, apply_b_dec_to_input=apply_b_dec)
    sae = TopKSAE(cfg).double()
    x = torch.randn(64, 12, dtype=torch.float64)
    dead = torch.zeros(40, dtype=torch.bool)
    dead[::3] = True
    loss, _ = finetune_loss(sae, x, dead, dead_weight=0.3)
    with patch.object(finetune, "selected_pre_acts", dense_selected):
        want, _ = finetune_loss(sae, x, dead, dead_weight=0.3)
    torch.testing.assert_close(loss, want)
    for got, ref in zip(gradients(sae, loss), gradients(sae, want), strict=True):
        torch.testing.assert_close(got, ref)


def test_sparse_auxk_loss_has_the_dense_loss_value_and_gradients():
    torch.manual_seed(3)
    sae = TopKSAE(SAEConfig(d_in=12, d_sae=40, k=4), aux_k=6).double().eval()  # no firing updates
    x = torch.randn(64, 12, dtype=torch.float64)
    sae.tokens_since_fired[::2] = 1000  # every other latent dead
    dead = sae.tokens_since_fired > 10
    loss, figures = sae.loss(x, TrainStep(k=4, dead_after=10))
    main = sae.loss(x, TrainStep(k=4))[0]
    want = main + sae.aux_coefficient * dense_aux_loss(sae, x, dead)
    torch.testing.assert_close(loss, want)
    for got, ref in zip(gradients(sae, loss), gradients(sae, want), strict=True):
        torch.testing.assert_close(got, ref)


def test_an_empty_selection_has_zero_gradients():
    w = torch.randn(8, 24, dtype=torch.float64, requires_grad=True)
    b = torch.randn(24, dtype=torch.float64, requires_grad=True)
    x, b_dec = torch.randn(5, 8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    indices = torch.zeros(5, 0, dtype=torch.long)
    with torch.no_grad():
        pre = (x - b_dec) @ w + b
    selected_pre_acts(x, b_dec, w, b, pre, indices).sum().backward()
    assert not w.grad.any() and not b.grad.any()
