"""S4Classifier: the full waveform in one pass, gradients, streaming, optimiser groups."""

import copy

import pytest
import torch
import torch.nn.functional as F

from s4 import S4Classifier, param_groups


def test_forward_backward_on_a_full_second_of_audio():
    torch.manual_seed(0)
    model = S4Classifier(10)  # the SC10 configuration: 6 layers, d_model 128, d_state 64
    logits = model(torch.randn(2, 16000))
    assert logits.shape == (2, 10) and logits.dtype == torch.float32
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("mode", ["dplr", "diag"])
def test_streaming_steps_reproduce_forward(mode):
    torch.manual_seed(0)
    model = S4Classifier(5, d_model=8, n_layers=2, d_state=8, mode=mode, pool=[4, 1], l_max=800).eval()
    waveform = torch.randn(2, 800)
    with torch.no_grad():
        expected = model(waveform, dt_scale=2.0)
        state, features = model.initial_state(2), []
        for t in range(waveform.shape[1]):
            f, state = model.step(waveform[:, t], state, dt_scale=2.0)
            if f is not None:
                features.append(f)
        streamed = model.head(torch.stack(features, 1).mean(1))
    assert len(features) == 200
    assert torch.allclose(streamed, expected, atol=1e-4)


def _bidirectional_by_recurrence(s4, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSM part of a bidirectional layer by its recurrent view, u (B, L, H) → (forward, backward), each
    (B, L, H): channels 0…H−1 of its SSM step through u, channels H…2H−1 through u reversed in time (reversed
    back). No kernel, no FFT: an independent route to what the layer's two-sided convolution computes."""
    B, L, H = u.shape
    both = torch.cat([u, u.flip(1)], dim=-1)  # (B, L, 2H)
    state, outputs = torch.zeros(B, 2 * H, s4.d_state // 2, dtype=torch.complex128), []
    for t in range(L):
        y, state = s4.ssm.step(both[:, t], state)
        outputs.append(y)
    y = torch.stack(outputs, 1)
    return y[..., :H], y[..., H:].flip(1)


def _reference_logits(model: S4Classifier, waveform: torch.Tensor, backward: bool = True) -> torch.Tensor:
    """A LayerNorm, bidirectional, GLU S4Classifier's forward written out in float64: pre-norm residual blocks of
    S4 (SSMs by recurrence, D skip, GELU, Linear, GLU), a final LayerNorm, the mean over time, the decoder.
    backward=False leaves the backward direction out (a negative control)."""
    model = copy.deepcopy(model).double()
    H = model.d_model
    x = waveform.double()[..., None] @ model.encoder.weight.T + model.encoder.bias
    for block in model.blocks:
        norm, s4 = block.norm.norm, block.s4
        u = F.layer_norm(x, (H,), norm.weight, norm.bias, norm.eps)
        forward, backward_part = _bidirectional_by_recurrence(s4, u)
        y = forward + (backward_part if backward else 0) + s4.D * u
        x = x + F.glu(s4.output_linear(F.gelu(y)), dim=-1)
    x = F.layer_norm(x, (H,), model.norm.norm.weight, model.norm.norm.bias, model.norm.norm.eps)
    return model.decoder(x.mean(1))


def test_layer_norm_bidirectional_glu_variant():
    """The bidirectional + GLU + LayerNorm + n_ssm model against `_reference_logits`, with every parameter
    randomised first (each SSM copy apart), so that each one matters. Tolerance: the model runs its SSMs in float32
    (kernels within 1e-4 of float64, relative); two blocks carry that to logits of size ~1 as ≲ 1e-4."""
    torch.manual_seed(0)
    model = S4Classifier(35, d_model=16, n_layers=2, d_state=8, bidirectional=True, glu=True, norm="layer", n_ssm=2)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter) * parameter.abs().mean().clamp(min=0.1))
    model.eval()
    # n_ssm = 2 copies per direction, each shared by 8 consecutive channels of 32: 4 distinct Λ, one per group.
    Lambda = torch.view_as_real(model.blocks[0].s4.ssm.Lambda().detach()).flatten(1)
    assert Lambda.shape[0] == 32 and [len(torch.unique(group, dim=0)) for group in Lambda.chunk(4)] == [1] * 4
    assert len(torch.unique(Lambda, dim=0)) == 4

    waveform = torch.randn(3, 300)
    with torch.no_grad():
        logits = model(waveform).double()
        expected, one_way = _reference_logits(model, waveform), _reference_logits(model, waveform, backward=False)
    assert logits.shape == (3, 35) and (logits - expected).abs().max() < 1e-4
    assert (logits - one_way).abs().max() > 1e-2  # the backward direction shows far above the tolerance


def test_param_groups_split_ssm_and_no_decay_parameters():
    model = S4Classifier(10, d_model=16, n_layers=2, d_state=8)
    groups = param_groups(model, lr=0.01, weight_decay=0.05, ssm_lr=1e-3)
    by_lr = {(g["lr"], g["weight_decay"]): g["params"] for g in groups}
    ssm = {id(p) for p in by_lr[(1e-3, 0.0)]}
    ssm_expected = {id(p) for b in model.blocks for n, p in b.s4.ssm.named_parameters() if n != "C"}
    assert ssm == ssm_expected
    decay = {id(p) for p in by_lr[(0.01, 0.05)]}
    assert id(model.encoder.weight) in decay and id(model.blocks[0].s4.ssm.C) in decay
    assert id(model.encoder.bias) not in decay and id(model.blocks[0].norm.norm.weight) not in decay
    total = sum(len(g["params"]) for g in groups)
    assert total == len(list(model.parameters()))
    torch.optim.AdamW(groups)  # the groups are valid optimiser input


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="pool needs 2 positive factors"):
        S4Classifier(10, n_layers=2, pool=[4])
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        S4Classifier(10, n_layers=1, norm="group")
    with pytest.raises(ValueError, match=r"waveform batch \(batch, samples\)"):
        S4Classifier(10, d_model=8, n_layers=1, d_state=8)(torch.randn(16000))


@pytest.mark.parametrize("mode", ["dplr", "diag"])
def test_chunked_stream_equals_forward_for_any_chunking(mode):
    torch.manual_seed(1)
    model = S4Classifier(4, d_model=8, n_layers=3, d_state=8, mode=mode, pool=[8, 2, 1], l_max=1600).eval()
    waveform = torch.randn(1, 1600)
    with torch.no_grad():
        expected = model.features(waveform, dt_scale=2.0)
        state, pieces, start = model.initial_state(1), [], 0
        for size in [1, 7, 300, 13, 1000, 279]:  # chunk edges fall inside pooling windows
            features, state = model.step_chunk(waveform[:, start : start + size], state, dt_scale=2.0)
            pieces.append(features)
            start += size
        streamed = torch.cat(pieces, 1)
    assert start == 1600 and streamed.shape == expected.shape == (1, 100, 8)
    assert torch.allclose(streamed, expected, atol=1e-4)
