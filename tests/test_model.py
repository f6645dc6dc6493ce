"""S4Classifier: the full waveform in one pass, gradients, streaming, optimiser groups."""

import pytest
import torch

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


def test_layer_norm_bidirectional_glu_variant():
    model = S4Classifier(35, d_model=16, n_layers=2, d_state=8, bidirectional=True, glu=True, norm="layer", n_ssm=2)
    assert model(torch.randn(3, 1000)).shape == (3, 35)


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
