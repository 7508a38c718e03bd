"""The training loop: every objective's loss falls in 100 steps, runs repeat exactly, NaN stops with its step."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from bertcourse import engine
from bertcourse.bert import BertConfig, BertForMaskedLM, BertForPreTraining, BertModel
from bertcourse.data.collators import (
    ClassificationDataset,
    LMCollator,
    MLMCollator,
    NSPDataset,
    PadCollator,
    TextDataset,
    TokenClassificationDataset,
)
from bertcourse.data.toylang import POS_TAGS, ToyLanguage
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.engine import History, NonFiniteLossError, evaluate, lr_lambda, param_groups
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.heads import SequenceClassifier, TokenClassifier
from bertcourse.outputs import SequenceClassifierOutput
from bertcourse.tokenizers import WordPieceTokenizer

STEPS = 100
train = functools.partial(engine.train, device="cpu")  # CPU, where runs repeat exactly; the GPU test overrides it
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64, "max_len": 32, "dropout": 0.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run ~10x faster on one thread when other processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lang_data() -> tuple[WordPieceTokenizer, list[str], list[list[str]]]:
    documents = [d.texts for d in ToyLanguage(0).corpus(300)]
    texts = [s for doc in documents for s in doc]
    return WordPieceTokenizer.train(texts, vocab_size=600), texts, documents


def _loader(dataset, collator, batch_size: int = 16, shuffle: bool = True) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collator)


def _falls(history: History) -> tuple[float, float]:
    """Mean train loss of the first and the last 10 steps."""
    return sum(history.train_loss[:10]) / 10, sum(history.train_loss[-10:]) / 10


def _check_learns(
    model: nn.Module, train_loader: DataLoader, eval_loader: DataLoader, factor: float = 0.8, lr: float = 3e-3, **kwargs
) -> History:
    """Train STEPS steps: the train loss must end below ``factor`` times its start, the eval loss fall by 10 %."""
    before = evaluate(model, eval_loader, accuracy=kwargs.get("accuracy"))["loss"]
    history = train(model, train_loader, max_steps=STEPS, lr=lr, eval_loader=eval_loader, eval_every=50, **kwargs)
    first, last = _falls(history)
    assert last < factor * first, (first, last)
    assert history.eval_loss[-1] < 0.9 * before, (before, history.eval_loss)
    assert history.eval_step == [50, 100] and len(history.train_loss) == STEPS
    return history


def test_causal_lm_loss_falls(lang_data) -> None:
    tok, texts, _ = lang_data
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    collate = LMCollator(tok)
    data = TextDataset(texts[:400], tok, max_length=32)
    _check_learns(model, _loader(data, collate), _loader(TextDataset(texts[400:500], tok), collate, shuffle=False))


def test_bidirectional_lm_loss_falls(lang_data) -> None:
    tok, texts, _ = lang_data
    torch.manual_seed(0)
    model = ELMo(ELMoConfig(vocab_size=tok.vocab_size, d_model=32, d_hidden=48, n_layers=1, dropout=0.0))
    collate = LMCollator(tok)
    data = TextDataset(texts[:400], tok)
    _check_learns(model, _loader(data, collate), _loader(TextDataset(texts[400:500], tok), collate, shuffle=False))


def test_masked_lm_loss_falls(lang_data) -> None:
    tok, texts, _ = lang_data
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, **TINY))
    train_loader = _loader(TextDataset(texts[:400], tok), MLMCollator(tok))
    eval_loader = _loader(TextDataset(texts[400:500], tok), MLMCollator(tok, seed=1), shuffle=False)
    _check_learns(model, train_loader, eval_loader)


def test_masked_lm_with_next_sentence_prediction_loss_falls(lang_data) -> None:
    tok, _, documents = lang_data
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(vocab_size=tok.vocab_size, **{**TINY, "max_len": 64}))
    train_loader = _loader(NSPDataset(documents[:100], tok, seed=0), MLMCollator(tok))
    eval_loader = _loader(NSPDataset(documents[100:], tok, seed=1), MLMCollator(tok, seed=1), shuffle=False)
    _check_learns(model, train_loader, eval_loader, factor=0.85)


def test_downstream_sentiment_loss_falls_and_accuracy_is_reported(lang_data) -> None:
    tok, _, _ = lang_data
    items = ToyLanguage(1).sentiment_task(900)
    data = [ClassificationDataset.from_items(part, tok) for part in (items[:800], items[800:])]
    torch.manual_seed(0)
    encoder = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    model = SequenceClassifier(encoder, hidden_size=32, num_labels=2, pooling="last", dropout=0.0)
    train_loader = _loader(data[0], PadCollator(tok), batch_size=32)
    history = _check_learns(model, train_loader, _loader(data[1], PadCollator(tok), shuffle=False), lr=2e-3)
    assert all(a is not None and 0.0 <= a <= 1.0 for a in history.eval_accuracy)
    assert history.eval_accuracy[-1] > 0.6  # a balanced task: chance is 0.5


def test_downstream_pos_tagging_loss_falls(lang_data) -> None:
    tok, _, _ = lang_data
    items = ToyLanguage(2).pos_task(300)
    data = [TokenClassificationDataset.from_items(part, tok) for part in (items[:250], items[250:])]
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=tok.vocab_size, **TINY))
    model = TokenClassifier(encoder, hidden_size=32, num_labels=len(POS_TAGS), dropout=0.0)
    train_loader, eval_loader = _loader(data[0], PadCollator(tok)), _loader(data[1], PadCollator(tok), shuffle=False)
    history = _check_learns(model, train_loader, eval_loader, accuracy=True)
    assert history.eval_accuracy[-1] > 0.5  # nine tags: chance is about 0.11


def test_two_runs_with_one_seed_give_identical_losses(lang_data) -> None:
    tok, texts, _ = lang_data

    def run() -> History:
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, **{**TINY, "dropout": 0.1}))
        return train(model, _loader(TextDataset(texts[:160], tok), MLMCollator(tok)), max_steps=15, seed=3)

    first, second = run(), run()
    assert first.train_loss == second.train_loss and first.lr == second.lr
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, **{**TINY, "dropout": 0.1}))
    other = train(model, _loader(TextDataset(texts[:160], tok), MLMCollator(tok)), max_steps=15, seed=4)
    assert other.train_loss != first.train_loss  # the seed drives shuffling, masking and dropout


class _Exploding(nn.Module):
    """A model whose loss turns NaN on its ``bad_call``-th forward pass."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.calls, self.bad_call = 0, bad_call

    def forward(self, input_ids: torch.Tensor, **_: torch.Tensor) -> SequenceClassifierOutput:
        self.calls += 1
        loss = self.weight.sum() * (math.nan if self.calls == self.bad_call else 1.0)
        return SequenceClassifierOutput(logits=input_ids.float(), loss=loss)


def test_nan_loss_stops_training_naming_the_step() -> None:
    loader = [{"input_ids": torch.ones(2, 3, dtype=torch.long)}] * 2
    with pytest.raises(NonFiniteLossError, match="nan at step 3"):
        train(_Exploding(bad_call=3), loader, max_steps=10, device="cpu")


class _NoTargets(nn.Module):
    """A classifier scored with plain ``F.cross_entropy``, which is NaN (0/0) when every label is -100."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, **_: torch.Tensor) -> SequenceClassifierOutput:
        logits = self.linear(input_ids.float())
        return SequenceClassifierOutput(logits=logits, loss=nn.functional.cross_entropy(logits, labels))


def test_nan_loss_names_its_cause() -> None:
    """The message names what went wrong, and says so when it is not the learning rate."""
    ids = torch.ones(2, 3, dtype=torch.long)
    no_targets = [
        {"input_ids": ids, "labels": torch.tensor([0, 1])},
        {"input_ids": ids, "labels": torch.full((2,), -100)},
    ]
    with pytest.raises(NonFiniteLossError, match=r"step 2: the batch has no targets: every entry of 'labels' is -100"):
        train(_NoTargets(), no_targets, max_steps=4)
    model = _NoTargets()
    with torch.no_grad():
        model.linear.weight[0, 0] = math.nan
    with pytest.raises(NonFiniteLossError, match="not finite before training started; not a learning-rate"):
        train(model, no_targets[:1], max_steps=2)
    with pytest.raises(NonFiniteLossError, match=r"step 3: inputs, labels and weights are finite.*lower lr"):
        train(_Exploding(bad_call=3), [{"input_ids": ids}], max_steps=5)


def test_masked_lm_batch_without_targets_trains_on(lang_data) -> None:
    """The issue's crash: a last batch of 2 sentences with no masked token gave a NaN loss; now it is a zero."""
    tok, texts, _ = lang_data
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, **TINY))
    collate = PadCollator(tok)
    batch = collate([{"input_ids": tok.encode(t)} for t in texts[:2]])
    batch["labels"] = torch.full_like(batch["input_ids"], -100)  # what an unlucky draw of the old collator gave
    out = model(**batch)
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert all(p.grad is None or bool((p.grad == 0).all()) for p in model.parameters())  # it updates nothing
    masked = MLMCollator(tok)([{"input_ids": tok.encode(t)} for t in texts[2:6]])
    history = train(model, [masked, batch], max_steps=4, lr=1e-3)
    assert history.train_loss[1] == history.train_loss[3] == 0.0 and math.isfinite(history.train_loss[2])


def test_history_plot_draws_smoothed_train_and_eval_curves() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    history = History([1, 2, 3], [3.0, 2.0, 1.0], [1e-3] * 3, eval_step=[3], eval_loss=[1.5], eval_accuracy=[None])
    train_line, eval_line = history.plot(smooth=2).get_lines()
    assert list(train_line.get_ydata()) == [3.0, 2.5, 1.5]
    assert list(eval_line.get_xdata()) == [3] and list(eval_line.get_ydata()) == [1.5]


@pytest.mark.gpu
def test_training_on_cuda_runs_in_bf16_and_lowers_the_loss(lang_data) -> None:
    tok, texts, _ = lang_data
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    dtypes = set()
    model.lm_head.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    loader = _loader(TextDataset(texts[:400], tok), LMCollator(tok))
    history = train(model, loader, max_steps=STEPS, lr=3e-3, device="cuda")
    assert next(model.parameters()).device.type == "cuda"
    if torch.cuda.is_bf16_supported():
        assert dtypes == {torch.bfloat16}
    first, last = _falls(history)
    assert last < 0.8 * first, (first, last)


def test_schedule_warmup_then_cosine_or_linear_decay() -> None:
    cosine, linear = lr_lambda(10, 110, "cosine"), lr_lambda(10, 110, "linear")
    assert [cosine(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert cosine(10) == pytest.approx(1.0) and cosine(60) == pytest.approx(0.5) and cosine(110) == pytest.approx(0.0)
    assert linear(60) == pytest.approx(0.5) and linear(35) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="schedule"):
        lr_lambda(1, 10, "step")
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_lambda(20, 10)


def test_history_lr_follows_the_schedule(lang_data) -> None:
    tok, texts, _ = lang_data
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    loader = _loader(TextDataset(texts[:64], tok), LMCollator(tok))
    history = train(model, loader, max_steps=20, lr=1e-2, warmup_steps=5, schedule="linear")
    multiplier = lr_lambda(5, 20, "linear")
    assert history.lr == pytest.approx([1e-2 * multiplier(s) for s in range(20)])
    assert history.step == list(range(1, 21))


def test_weight_decay_spares_biases_and_norms_but_not_embeddings() -> None:
    model = GPT(GPTConfig(vocab_size=20, **TINY))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert any("word_embeddings" in n for n in decayed)
    assert spared and all(n.endswith("bias") or "norm" in n or "ln" in n for n in spared), spared
    assert len(decayed) + len(spared) == len(list(model.parameters()))


def test_frozen_encoder_is_left_out_of_the_optimiser(lang_data) -> None:
    tok, _, _ = lang_data
    encoder = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = TokenClassifier(encoder, 32, num_labels=3, freeze_encoder=True)
    batch = {"input_ids": torch.randint(0, tok.vocab_size, (4, 6)), "labels": torch.randint(0, 3, (4, 6))}
    train(model, [batch], max_steps=5)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    groups = param_groups(model, 0.01)
    assert sum(len(g["params"]) for g in groups) == 2  # classifier weight and bias only


def test_evaluate_token_accuracy_counts_labelled_positions_only() -> None:
    class Fixed(nn.Module):
        def forward(self, input_ids, attention_mask=None, labels=None):
            logits = nn.functional.one_hot(input_ids, 3).float()  # predicts its own id
            return SequenceClassifierOutput(logits, torch.zeros(()))

    batch = {"input_ids": torch.tensor([[0, 1, 2, 2]]), "labels": torch.tensor([[0, 2, 2, -100]])}
    assert evaluate(Fixed(), [batch], accuracy=True) == {"loss": 0.0, "accuracy": 2 / 3}
    assert "accuracy" not in evaluate(Fixed(), [batch])  # (B, T) labels: LM-like, no accuracy by default


def test_checkpoints_are_written_and_reload(tmp_path: Path, lang_data) -> None:
    tok, texts, _ = lang_data
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    loader = _loader(TextDataset(texts[:32], tok), LMCollator(tok))
    train(model, loader, max_steps=4, checkpoint_dir=tmp_path / "run", checkpoint_every=2)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["step"] == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    reloaded = GPT.from_pretrained(tmp_path / "run")
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="save_pretrained"):
        train(TokenClassifier(model, 32, 2), loader, max_steps=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="step-indexed"):  # a shuffled DataLoader cannot say where it stood
        train(model, loader, max_steps=4, checkpoint_dir=tmp_path / "run", resume=True)


def test_eval_every_zero_never_evaluates_and_negative_is_refused(lang_data) -> None:
    tok, texts, _ = lang_data
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    loader = _loader(TextDataset(texts[:32], tok), LMCollator(tok))
    history = train(model, loader, max_steps=3, eval_loader=loader, eval_every=0)
    assert history.eval_step == [] and len(history.step) == 3 and history.tokens > 0 and history.seconds > 0
    with pytest.raises(ValueError, match="eval_every"):
        train(model, loader, max_steps=3, eval_every=-1)


def test_callback_runs_at_each_evaluation_step_and_leaves_training_unchanged(lang_data) -> None:
    tok, texts, _ = lang_data
    loader = _loader(TextDataset(texts[:32], tok), LMCollator(tok))
    seen: list[tuple[int, bool]] = []

    def measure(step: int, model: nn.Module) -> None:
        model.eval()  # what a measurement does; train() must switch back
        seen.append((step, model.training))

    torch.manual_seed(0)
    plain = train(GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY)), loader, max_steps=5, eval_every=2)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    measured = train(model, loader, max_steps=5, eval_every=2, callback=measure)
    assert seen == [(2, False), (4, False), (5, False)] and model.training
    assert measured.train_loss == plain.train_loss  # the same steps, to the last bit
    with pytest.raises(ValueError, match="callback"):
        train(model, loader, max_steps=1, callback="measure")  # type: ignore[arg-type]


def test_progress_bar_is_quiet_off_a_terminal(capsys: pytest.CaptureFixture[str], lang_data) -> None:
    tok, texts, _ = lang_data
    loader = _loader(TextDataset(texts[:32], tok), LMCollator(tok))
    train(GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY)), loader, max_steps=2)
    assert capsys.readouterr().err == ""
    train(GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY)), loader, max_steps=2, progress=True)
    assert "train" in capsys.readouterr().err


def test_bad_arguments_raise(lang_data) -> None:
    tok, texts, _ = lang_data
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **TINY))
    loader = _loader(TextDataset(texts[:8], tok), LMCollator(tok))
    with pytest.raises(ValueError, match="max_steps"):
        train(model, loader, max_steps=0)
    with pytest.raises(ValueError, match="lr"):
        train(model, loader, max_steps=1, lr=0.0)
    with pytest.raises(ValueError, match="no batches"):
        train(model, [], max_steps=1)
    with pytest.raises(ValueError, match="dicts"):
        train(model, [(torch.ones(1, 2),)], max_steps=1)
    with pytest.raises(ValueError, match="no loss"):
        train(model, [{"input_ids": torch.ones(1, 3, dtype=torch.long)}], max_steps=1)
