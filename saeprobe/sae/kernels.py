"""Encoders whose backward pass touches only the latents a loss selects per token.

    pre = (x - b_dec) @ W_enc + b_enc,  values, indices = topk(pre), values = relu(values)

Autograd through `topk` would push a dense (n, d_sae) gradient back through the encoder
matmul although only n*k of its entries are nonzero. Here the weight gradient is one
sparse-dense product, the bias gradients are an index_add and a mat-vec (the gradient of
b_dec is minus W_enc times the per-latent gradient sum), and the input gradient, which
training never needs, is formed only when asked for. `topk_encode` selects the top k
itself; `selected_pre_acts` reads pre-activations at indices chosen elsewhere (AuxK's dead
latents, fine-tuning's live and dead branches), so that those losses stay sparse too.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


class TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, k: int):
        centered = x - b_dec
        pre = torch.addmm(b_enc, centered, W_enc)
        values, indices = pre.topk(k, dim=-1, sorted=False)
        values = values.relu()
        ctx.save_for_backward(centered, W_enc, indices, values)
        ctx.mark_non_differentiable(indices)
        # Unused outputs (pre, most of the time) then arrive as None, not as dense zeros.
        ctx.set_materialize_grads(False)
        return values, indices, pre

    @staticmethod
    def backward(ctx, grad_values: Tensor, _grad_indices, grad_pre: Tensor | None):
        centered, W_enc, indices, values = ctx.saved_tensors
        if grad_values is None:
            grad_values = torch.zeros_like(values)
        g = grad_values * (values > 0)  # through the ReLU
        grad_x, grad_b_dec, grad_w, grad_b_enc = _sparse_grads(
            centered, W_enc, indices, g, grad_pre, ctx.needs_input_grad[0]
        )
        return grad_x, grad_b_dec, grad_w, grad_b_enc, None


class SelectedPreActs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, pre, indices):
        ctx.save_for_backward(x - b_dec, W_enc, indices)
        return pre.gather(1, indices)

    @staticmethod
    def backward(ctx, grad: Tensor):
        centered, W_enc, indices = ctx.saved_tensors
        grad_x, grad_b_dec, grad_w, grad_b_enc = _sparse_grads(
            centered, W_enc, indices, grad, None, ctx.needs_input_grad[0]
        )
        return grad_x, grad_b_dec, grad_w, grad_b_enc, None, None


def _sparse_grads(
    centered: Tensor,
    W_enc: Tensor,
    indices: Tensor,
    g: Tensor,
    grad_pre: Tensor | None,
    want_x: bool,
) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
    """Gradients of x, b_dec, W_enc and b_enc from g (n, m), the gradient of the
    pre-activations at `indices` (n, m), plus a dense gradient of all of them if given."""
    n, m = indices.shape
    d_sae = W_enc.shape[1]
    g = g.reshape(-1)
    flat = indices.reshape(-1)
    # Per-latent gradient of the pre-activations, summed over tokens: d loss / d b_enc.
    grad_b_enc = torch.zeros(d_sae, dtype=g.dtype, device=g.device).index_add_(0, flat, g)
    grad_w = _sparse_t_times(flat, g, (n, m, d_sae), centered).T
    if grad_pre is not None:  # a loss on the dense pre-activations
        grad_w = grad_w + centered.T @ grad_pre
        grad_b_enc = grad_b_enc + grad_pre.sum(0)
    grad_b_dec = -(W_enc @ grad_b_enc)
    grad_x = None
    if want_x:
        dense = torch.zeros(n, d_sae, dtype=g.dtype, device=g.device)
        dense.scatter_add_(1, indices, g.view(n, m))
        if grad_pre is not None:
            dense = dense + grad_pre
        grad_x = dense @ W_enc.T
    return grad_x, grad_b_dec, grad_w, grad_b_enc


def topk_encode(x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, k: int):
    """(values, indices, pre_acts) of the top-k latents of (x - b_dec) @ W_enc + b_enc."""
    return TopKEncode.apply(x, b_dec, W_enc, b_enc, k)


def _sparse_t_times(flat: Tensor, g: Tensor, shape: tuple[int, int, int], dense: Tensor):
    """G^T @ dense for G (n, d_sae) holding m entries a row, g at columns `flat`, row by row.

    On a CPU, G as CSR: its row pointers are a range and its columns the indices as they
    come, with no sort (a COO matrix is coalesced first, which took three times as long).
    The CPU product reads every entry, so unsorted or repeated columns in a row add up as
    they should (tests/test_sae_kernels.py checks both); hence no invariant checks. Other
    devices' sparse libraries expect sorted CSR columns, so they get the COO product."""
    n, m, d_sae = shape
    if g.device.type != "cpu":
        tokens = torch.arange(n, device=g.device).repeat_interleave(m)
        coo = torch.sparse_coo_tensor(torch.stack([flat, tokens]), g, (d_sae, n))
        return torch.sparse.mm(coo, dense)
    rows = torch.arange(n + 1, device=g.device) * m
    with warnings.catch_warnings():  # torch calls its CSR support beta, once per process
        warnings.simplefilter("ignore", UserWarning)
        sparse = torch.sparse_csr_tensor(rows, flat, g, (n, d_sae), check_invariants=False)
    return sparse.t() @ dense


def selected_pre_acts(
    x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, pre: Tensor, indices: Tensor
) -> Tensor:
    """pre.gather(1, indices), differentiable in x, b_dec, W_enc and b_enc as if `pre` were
    (x - b_dec) @ W_enc + b_enc, which it must hold (computed without a graph): the
    backward pass reads only the selected entries. An index that repeats within a row
    gets the sum of its gradients."""
    return SelectedPreActs.apply(x, b_dec, W_enc, b_enc, pre, indices)
