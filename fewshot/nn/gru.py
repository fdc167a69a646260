"""A single-layer GRU over a whole sequence, with a hand-written backward pass.

The same function as `torch.nn.GRU` (one layer, gate order r, z, n, both biases):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

Why: PyTorch's CPU GRU records about a dozen autograd nodes per step, and RL²'s update
replays trials of hundreds of steps on small minibatches, so its backward pass is mostly
per-node overhead. Here the backward is one short loop over time whose per-step work is a
broadcast product and one matrix product; everything that does not depend on the
incoming gradient (the gate derivatives) is computed for all steps at once before the
loop, and the weight gradients are two matrix products over all steps after it.
The module keeps `nn.GRU`'s parameters, so checkpoints are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class _GRUSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_LMI: torch.Tensor, h_MH: torch.Tensor, w_ih: torch.Tensor,
                w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        L, M, H = x_LMI.shape[0], x_LMI.shape[1], h_MH.shape[1]
        # The input's share of every gate, for all steps in one product; b_hh's r and z
        # parts join it there (only its n part sits inside r * (...)).
        gi_LMG = torch.addmm(b_ih + torch.cat([b_hh[:2 * H], b_hh.new_zeros(H)]),
                             x_LMI.reshape(L * M, -1), w_ih.t()).view(L, M, 3 * H)
        w_rz_t, w_n_t, b_n = w_hh[:2 * H].t(), w_hh[2 * H:].t(), b_hh[2 * H:]
        states_LMH = x_LMI.new_empty(L + 1, M, H)
        states_LMH[0] = h_MH
        rz_LMG = x_LMI.new_empty(L, M, 2 * H)
        n_LMH, ghn_LMH = x_LMI.new_empty(L, M, H), x_LMI.new_empty(L, M, H)
        for gi_rz, gi_n, h, rz, n, ghn, h_next in zip(
                gi_LMG[..., :2 * H].unbind(0), gi_LMG[..., 2 * H:].unbind(0),
                states_LMH[:-1].unbind(0), rz_LMG.unbind(0), n_LMH.unbind(0),
                ghn_LMH.unbind(0), states_LMH[1:].unbind(0), strict=True):
            torch.sigmoid(torch.addmm(gi_rz, h, w_rz_t), out=rz)
            torch.addmm(b_n, h, w_n_t, out=ghn)
            torch.tanh(torch.addcmul(gi_n, rz[:, :H], ghn), out=n)
            torch.lerp(n, h, rz[:, H:], out=h_next)
        ctx.save_for_backward(x_LMI, states_LMH, rz_LMG, n_LMH, ghn_LMH, w_ih, w_hh)
        return states_LMH[1:], states_LMH[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout_LMH: torch.Tensor, dlast_MH: torch.Tensor):
        x_LMI, states_LMH, rz_LMG, n, ghn, w_ih, w_hh = ctx.saved_tensors
        L, M, H = n.shape
        r, z, prev_LMH = rz_LMG[..., :H], rz_LMG[..., H:], states_LMH[:-1]
        # d(gate pre-activation)/dh' for all steps at once: the loop only scales them.
        dn_pre = (1 - z) * (1 - n * n)                        # wrt W_in x + r * gh_n
        gates_LM3H = torch.stack([dn_pre * ghn * r * (1 - r),  # wrt the r pre-activation
                                  (prev_LMH - n) * z * (1 - z),  # wrt the z pre-activation
                                  dn_pre * r], dim=2)          # wrt gh_n = W_hn h + b_hn
        dh_steps = torch.zeros_like(n) if dout_LMH is None else dout_LMH.clone()
        dh = torch.zeros_like(n[0]) if dlast_MH is None else dlast_MH
        for gates, z_t, dh_t in zip(gates_LM3H.unbind(0)[::-1], z.unbind(0)[::-1],
                                    dh_steps.unbind(0)[::-1], strict=True):
            dh_t += dh                                          # dh_steps[t]: all of dL/dh_t
            dgh = (gates * dh_t[:, None, :]).view(M, 3 * H)
            dh = torch.addmm(dh_t * z_t, dgh, w_hh)
        dgh_LMG = (gates_LM3H * dh_steps[:, :, None, :]).reshape(L * M, 3 * H)
        dgi_LMG = torch.cat([dgh_LMG[:, :2 * H], (dn_pre * dh_steps).reshape(L * M, H)], 1)
        dx = (dgi_LMG @ w_ih).view_as(x_LMI) if ctx.needs_input_grad[0] else None
        return (dx, dh, dgi_LMG.t() @ x_LMI.reshape(L * M, -1),
                dgh_LMG.t() @ prev_LMH.reshape(L * M, H), dgi_LMG.sum(0), dgh_LMG.sum(0))


def gru_sequence(gru: nn.GRU, x_LMI: torch.Tensor, h_MH: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one-layer `gru` over x [L, M, I] from h [M, H]: outputs [L, M, H] and the last
    hidden state [M, H], equal to `gru(x, h[None])` up to float rounding."""
    if gru.num_layers != 1 or not gru.bias or gru.bidirectional or gru.batch_first:
        raise ValueError("gru_sequence: a one-layer, unidirectional, sequence-first GRU "
                         "with biases is supported")
    return _GRUSequence.apply(x_LMI, h_MH, gru.weight_ih_l0, gru.weight_hh_l0,
                              gru.bias_ih_l0, gru.bias_hh_l0)
