"""A TopK encoder whose backward pass touches only the k selected latents per token.

    pre = (x - b_dec) @ W_enc + b_enc,  values, indices = topk(pre), values = relu(values)

Autograd through `topk` would push a dense (n, d_sae) gradient back through the encoder
matmul although only n*k of its entries are nonzero. Here the weight gradient is one
sparse-dense product, the bias gradients are an index_add and a mat-vec (the gradient of
b_dec is minus W_enc times the per-latent gradient sum), and the input gradient, which
training never needs, is formed only when asked for.
"""

from __future__ import annotations

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
        n, k = indices.shape
        d_sae = W_enc.shape[1]
        if grad_values is None:
            grad_values = torch.zeros_like(values)
        g = (grad_values * (values > 0)).reshape(-1)  # through the ReLU
        flat = indices.reshape(-1)
        # Per-latent gradient of the pre-activations, summed over tokens: d loss / d b_enc.
        grad_b_enc = torch.zeros(d_sae, dtype=g.dtype, device=g.device).index_add_(0, flat, g)
        # d loss / d W_enc^T = G^T @ centered with G sparse: (d_sae, n) holding n*k entries.
        tokens = torch.arange(n, device=g.device).repeat_interleave(k)
        sparse = torch.sparse_coo_tensor(
            torch.stack([flat, tokens]), g, (d_sae, n), check_invariants=False
        )
        grad_w = torch.sparse.mm(sparse, centered).T
        if grad_pre is not None:  # AuxK differentiates the dense pre-activations too
            grad_w = grad_w + centered.T @ grad_pre
            grad_b_enc = grad_b_enc + grad_pre.sum(0)
        grad_b_dec = -(W_enc @ grad_b_enc)
        grad_x = None
        if ctx.needs_input_grad[0]:
            dense = torch.zeros(n, d_sae, dtype=g.dtype, device=g.device)
            dense.scatter_(1, indices, g.view(n, k))
            if grad_pre is not None:
                dense = dense + grad_pre
            grad_x = dense @ W_enc.T
        return grad_x, grad_b_dec, grad_w, grad_b_enc, None


def topk_encode(x: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, k: int):
    """(values, indices, pre_acts) of the top-k latents of (x - b_dec) @ W_enc + b_enc."""
    return TopKEncode.apply(x, b_dec, W_enc, b_enc, k)
