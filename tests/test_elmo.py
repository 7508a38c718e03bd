"""ELMo: what each direction may see, padding invariance, fused == explicit, training, checkpoints; ScalarMix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.lstm import reverse_padded
from bertcourse.objectives import backward_lm_loss, causal_lm_loss
from bertcourse.scalar_mix import ScalarMix

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

V, T = 23, 7


def tiny_config(**overrides: object) -> ELMoConfig:
    fields: dict[str, object] = {"vocab_size": V, "d_model": 8, "d_hidden": 12, "n_layers": 2, "dropout": 0.0}
    return ELMoConfig(**{**fields, **overrides})  # type: ignore[arg-type]


def tiny_model(**overrides: object) -> ELMo:
    torch.manual_seed(0)
    return ELMo(tiny_config(**overrides)).double().eval()


def test_shapes_and_layer_stack() -> None:
    model = tiny_model(n_layers=3)
    ids = torch.randint(0, V, (2, T))
    out = model(ids)
    assert out.forward_logits.shape == out.backward_logits.shape == (2, T, V)
    assert out.logits is out.forward_logits
    assert len(out.hidden_states) == 4 and all(h.shape == (2, T, 16) for h in out.hidden_states)
    e = model.embeddings(ids)
    assert_close(out.hidden_states[0], torch.cat([e, e], dim=-1))  # layer 0 is [x; x]
    # At initialisation (w = 0, γ = 1) encode is the plain average of the stack.
    assert_close(model.encode(ids), torch.stack(out.hidden_states).mean(0))


def test_layers_from_the_second_on_are_residual() -> None:
    """h_j = LSTM_j(h_{j-1}) + h_{j-1} for j >= 2, in both directions (backward read right to left)."""
    model = tiny_model(n_layers=3)
    ids = torch.randint(0, V, (2, T))
    stack = model(ids).hidden_states
    d = model.config.d_model
    for j in (2, 3):
        below, here = stack[j - 1], stack[j]
        forward_below, backward_below = below[..., :d], below[..., d:]  # (B, T, 2d) -> 2 x (B, T, d)
        assert_close(here[..., :d], model.forward_lstms[j - 1](forward_below)[0] + forward_below)
        backward_step = model.backward_lstms[j - 1](backward_below.flip(1))[0].flip(1)
        assert_close(here[..., d:], backward_step + backward_below)


def test_num_parameters_closed_form() -> None:
    config = tiny_config(n_layers=3)
    model = ELMo(config)
    d, H, L = config.d_model, config.d_hidden, config.n_layers
    per_lstm = 4 * H * d + 4 * H * d + 2 * 4 * H + d * H  # W_ih (4H, d), W_hh (4H, d), two biases, W_hr (d, H)
    expected = V * d + 2 * L * per_lstm + (d * V + V) + (L + 1) + 1  # embedding, both LMs, softmax, ScalarMix
    assert model.num_parameters() == expected


def _changed_positions(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Positions t of (1, T, ...) outputs that moved."""
    return [t for t in range(before.shape[1]) if not torch.allclose(before[0, t], after[0, t], rtol=0, atol=1e-12)]


@pytest.mark.parametrize("j", [0, 3, T - 1])
def test_which_inputs_each_output_sees(j: int) -> None:
    """Perturb token j: forward LM moves at t >= j only, backward LM at t <= j only, encode everywhere."""
    model = tiny_model()
    ids = torch.randint(0, V, (1, T))
    perturbed = ids.clone()
    perturbed[0, j] = (ids[0, j] + 1) % V
    a, b = model(ids), model(perturbed)
    assert _changed_positions(a.forward_logits, b.forward_logits) == list(range(j, T))
    assert _changed_positions(a.backward_logits, b.backward_logits) == list(range(0, j + 1))
    assert _changed_positions(model.encode(ids), model.encode(perturbed)) == list(range(T))


@pytest.mark.parametrize("fused", [True, False])
def test_right_padding_is_invisible(fused: bool) -> None:
    """Real positions of a padded batch equal each sequence alone; what sits in the padding does not matter."""
    model = tiny_model(fused=fused)
    lengths = [T, 4, 1]
    ids = torch.randint(0, V, (3, T))
    mask = (torch.arange(T) < torch.tensor(lengths).unsqueeze(1)).long()
    out, enc = model(ids, attention_mask=mask), model.encode(ids, attention_mask=mask)
    for b, n in enumerate(lengths):
        alone = model(ids[b : b + 1, :n])
        assert_close(out.forward_logits[b, :n], alone.forward_logits[0])
        assert_close(out.backward_logits[b, :n], alone.backward_logits[0])
        assert_close(enc[b, :n], model.encode(ids[b : b + 1, :n])[0])
    other_padding = torch.where(mask.bool(), ids, (ids + 5) % V)
    out2 = model(other_padding, attention_mask=mask)
    real = mask.bool()
    assert_close(out2.forward_logits[real], out.forward_logits[real])
    assert_close(out2.backward_logits[real], out.backward_logits[real])
    assert_close(model.encode(other_padding, attention_mask=mask)[real], enc[real])


def test_padding_is_neither_target_nor_source_of_the_loss() -> None:
    """A padded sequence has the loss of the same sequence alone, whatever the pad ids and labels are."""
    model = tiny_model()
    ids = torch.randint(0, V, (1, 4))
    alone = model(ids, labels=ids).loss
    padded = torch.cat([ids, torch.randint(0, V, (1, 3))], dim=1)  # (1, 4) -> (1, 7)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
    assert_close(model(padded, attention_mask=mask, labels=padded).loss, alone)
    per_direction = model(ids, labels=ids)
    forward_only = torch.nn.functional.cross_entropy(per_direction.forward_logits[0, :-1], ids[0, 1:])
    backward_only = torch.nn.functional.cross_entropy(per_direction.backward_logits[0, 1:], ids[0, :-1])
    assert_close(alone, (forward_only + backward_only) / 2)
    assert_close(per_direction.forward_loss, forward_only)
    assert_close(per_direction.backward_loss, backward_only)
    padded_out = model(padded, attention_mask=mask, labels=padded)
    assert_close(padded_out.forward_loss, forward_only)  # padding changes neither direction's loss
    assert_close(padded_out.backward_loss, backward_only)
    assert model(ids).forward_loss is None and model(ids).backward_loss is None


def test_fused_and_explicit_models_agree_on_the_same_weights() -> None:
    fused = tiny_model(fused=True)
    explicit = ELMo(tiny_config(fused=False)).double().eval()
    explicit.load_state_dict(fused.state_dict())
    ids = torch.randint(0, V, (2, T))
    mask = torch.tensor([[1] * T, [1] * 3 + [0] * (T - 3)])
    a, b = fused(ids, mask, labels=ids), explicit(ids, mask, labels=ids)
    assert_close(b.forward_logits, a.forward_logits)
    assert_close(b.backward_logits, a.backward_logits)
    assert_close(b.loss, a.loss)
    assert_close(explicit.encode(ids, mask), fused.encode(ids, mask))
    a.loss.backward()
    b.loss.backward()
    for (name, p), q in zip(fused.named_parameters(), explicit.parameters(), strict=True):
        if p.grad is not None:
            assert_close(q.grad, p.grad, msg=name)


def test_padded_batch_equals_packed_lstms_states_and_gradients() -> None:
    """ELMo runs its LSTMs unpacked and zeroes the padding; a packed run of the same layers gives the same
    layer states (padding included) and the same gradients."""
    model = tiny_model()
    lengths = torch.tensor([T, 4, 1])
    ids = torch.randint(0, V, (3, T))
    mask = (torch.arange(T) < lengths.unsqueeze(1)).long()
    out = model(ids, mask, labels=ids)

    def packed_states(layers: torch.nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
        states, h = [], x
        for j, lstm in enumerate(layers):
            o, _ = lstm(h, lengths=lengths)  # pack_padded_sequence inside
            h = o if j == 0 else o + h
            states.append(h)
        return states

    x = model.embeddings(ids)
    forward = packed_states(model.forward_lstms, x)
    backward = [reverse_padded(h, lengths) for h in packed_states(model.backward_lstms, reverse_padded(x, lengths))]
    for j, (f, b) in enumerate(zip(forward, backward, strict=True)):
        assert_close(out.hidden_states[j + 1], torch.cat([f, b], dim=-1))
    logits = (model.lm_head(forward[-1]), model.lm_head(backward[-1]))
    assert_close(out.forward_logits, logits[0])
    assert_close(out.backward_logits, logits[1])
    params = list(model.parameters())
    got = torch.autograd.grad(out.loss, params, allow_unused=True)
    forward_labels, backward_labels = model._direction_labels(ids, ids, mask)
    reference = 0.5 * (causal_lm_loss(logits[0], forward_labels) + backward_lm_loss(logits[1], backward_labels))
    assert_close(reference, out.loss)
    want = torch.autograd.grad(reference, params, allow_unused=True)
    for (name, _), a, b in zip(model.named_parameters(), got, want, strict=True):
        if b is not None:
            assert_close(a, b, msg=name)


def test_overfits_one_small_batch() -> None:
    torch.manual_seed(0)
    model = ELMo(tiny_config())
    ids = torch.randint(0, V, (4, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(60):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::25]


def test_save_load_round_trip_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ELMo(tiny_config(n_layers=3)).eval()
    with torch.no_grad():
        model.scalar_mix.weights.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    model.save_pretrained(tmp_path)
    loaded = ELMo.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    for (key, value), (key2, value2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert key == key2 and value.dtype == value2.dtype and torch.equal(value, value2), key
    ids = torch.randint(0, V, (2, T))
    assert torch.equal(loaded.encode(ids), model.encode(ids))
    assert torch.equal(loaded(ids).backward_logits, model(ids).backward_logits)


def test_bad_inputs_raise_value_errors_naming_the_problem() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, T))
    with pytest.raises(ValueError, match="input_ids must lie in"):
        model(torch.full((2, T), V))
    with pytest.raises(ValueError, match="input_ids must be a"):
        model(ids[0])
    with pytest.raises(ValueError, match="at least one token"):
        model(ids[:, :0])
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        model(ids, attention_mask=torch.ones(2, T - 1))
    with pytest.raises(ValueError, match="right-padded"):
        model(ids, attention_mask=torch.tensor([[0] + [1] * (T - 1)] * 2))
    with pytest.raises(ValueError, match="only 0"):
        model(ids, attention_mask=torch.full((2, T), 2))
    with pytest.raises(ValueError, match="all-padding row"):
        model.encode(ids, attention_mask=torch.tensor([[1] * T, [0] * T]))
    with pytest.raises(ValueError, match="labels must have shape"):
        model(ids, labels=ids[:, :-1])
    with pytest.raises(ValueError, match="labels must lie in"):
        model(ids, labels=torch.full((2, T), V))
    with pytest.raises(ValueError, match="d_model=16 must be < d_hidden=12"):
        tiny_config(d_model=16)
    with pytest.raises(ValueError, match=r"ELMoConfig\.dropout"):
        tiny_config(dropout=1.0)
    with pytest.raises(ValueError, match=r"ELMoConfig\.n_layers"):
        tiny_config(n_layers=0)


def test_scalar_mix_is_gamma_times_softmax_weighted_sum() -> None:
    mix = ScalarMix(3)
    layers = [torch.randn(2, 4, 5) for _ in range(3)]
    assert_close(mix(layers), sum(layers) / 3)  # w = 0, γ = 1: the plain average
    w = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        mix.weights.copy_(w)
        mix.gamma.fill_(1.7)
    s = torch.softmax(w, dim=0)
    assert_close(mix(layers), 1.7 * (s[0] * layers[0] + s[1] * layers[1] + s[2] * layers[2]))
    mix(layers).sum().backward()
    assert mix.weights.grad is not None and mix.gamma.grad is not None


def test_scalar_mix_validates_layers() -> None:
    mix = ScalarMix(2)
    with pytest.raises(ValueError, match="sequence of 2 tensors, got 3"):
        mix([torch.zeros(2, 3)] * 3)
    with pytest.raises(ValueError, match="one shape"):
        mix([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="num_layers"):
        ScalarMix(0)


@pytest.mark.gpu
def test_cuda_matches_cpu_with_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # cuDNN RNNs default to TF32 on Ampere+
    torch.manual_seed(0)
    model = ELMo(tiny_config()).eval()
    ids = torch.randint(0, V, (3, T))
    mask = (torch.arange(T) < torch.tensor([[T], [4], [1]])).long()
    cpu = model(ids, mask, labels=ids)
    gpu = model.cuda()(ids.cuda(), mask.cuda(), labels=ids.cuda())
    for name in ("forward_logits", "backward_logits", "loss"):
        assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), rtol=1e-4, atol=1e-5, msg=name)
