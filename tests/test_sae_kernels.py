import pytest
import torch

from saeprobe.sae.kernels import topk_encode


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
