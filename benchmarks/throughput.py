"""Pre-training throughput of ELMo, GPT and BERT against Hugging Face and against the machine.

    python benchmarks/throughput.py                       # course preset, CPU: every table below
    python benchmarks/throughput.py --rounds 5 --steps 3  # quicker, noisier
    python benchmarks/throughput.py --threads 2           # default 1: one worker of ``compare --jobs auto``
    python benchmarks/throughput.py --no-train --decode-threads 1  # only the decoding table, one thread
    python benchmarks/throughput.py --profile elmo        # + where one course model's step goes
    make bench-throughput

One training step is what the pre-training engine does per batch: ``zero_grad``, forward, loss, backward,
gradient clipping to norm 1 and an ``AdamW`` step. Every model reads the same real batches of the preset's
corpus (right-padded, so masks and padding are exercised as in training), and each pair below has equal
weights:

* course ``GPT`` vs Hugging Face ``GPT2LMHeadModel`` with the same config (weights converted with
  ``bertcourse.pretrained.gpt_from_hf``);
* course ``BertForPreTraining`` vs Hugging Face ``BertForPreTraining`` (MLM + NSP, ``bert_from_hf``);
* course ``ELMo`` vs a plain reference: two multi-layer ``torch.nn.LSTM`` language models (one per
  direction, the backward one fed each sequence reversed within its length, packed sequences) with
  ELMo's weights, embedding and softmax.

Hugging Face models run with ``attn_implementation="sdpa"``, their default and fastest on CPU.

Timing: by default the CPU time of the process (``time.process_time``), so that other processes on a shared
machine, which take turns on the same cores, do not count (``--clock wall`` for elapsed time). There are
``--rounds`` rounds; in each round every implementation runs ``--steps`` steps, the two of a pair back to
back in an order that alternates from round to round, so the slow phases of a shared machine hit both
alike. Each ratio is the median over rounds of the per-round ratio; times are medians too. FLOPs per step
are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the reference implementation of each pair
(matmuls and attention; the same model FLOPs are credited to the course model of the pair), and the
machine's reach is the FLOP/s of a large float32 matmul measured in the same rounds, so the "share of
matmul" column says what fraction of the arithmetic the machine can do a step actually uses.

The decoding table times GPT's per-token step with the key/value cache (one new token, cache of the
context; ``DECODE_WARMUP`` untimed steps first, since the first steps after a long prefill are slow at any
context: they re-warm the caches the prefill evicted) and without it (the whole context recomputed), at
contexts of 64 to 1,024 tokens, once per ``--decode-threads`` (default: one thread, as a training worker
has, and PyTorch's default, every core, as ``GPT.generate`` in a notebook has; timed by the wall clock when
there are several threads, whose CPU time would also count their waits for each other), and beside them
the part of a cached step that must grow with the context: one query attending over each layer's cached
keys and values, alone (``scaled_dot_product_attention`` on tensors of the cache's shapes). What the cached
step adds from 64 to 1,024 tokens, next to what this floor adds, says whether anything but reading the cache
grows with the context. A control runs the same cached steps with every one-query attention reading only
the cache's last 64 positions (a wrong model, timed only): if the step then stays flat, reading the cache is
all that grows; the same control, each step also summing every cached key and value ("control + read"),
says how much of that growth the bytes alone make, without attention's arithmetic. A last column keeps the
cache in bfloat16 after the prefill (``GPT.generate``'s ``cache_dtype``): half the bytes per cached position.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
import transformers
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bertcourse.attention import cache_to
from bertcourse.bert import BertConfig, BertForPreTraining
from bertcourse.elmo import ELMo
from bertcourse.experiments.setup import PRESETS, preset_configs, pretraining_corpus
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.lstm import reverse_padded
from bertcourse.objectives import IGNORE_INDEX
from bertcourse.pretrained import bert_from_hf, gpt_from_hf
from bertcourse.validation import positive_int

Batch = dict[str, Tensor]
Step = Callable[[Batch], Tensor]
MATMUL_SIZE = 1024  # the reference matmul: (n, n) @ (n, n) in float32
DECODE_CONTEXTS = (64, 128, 256, 512, 1024)
DECODE_WARMUP = 8  # untimed cached steps after each prefill (the first after 1,024 tokens takes ~1.5x a later one)
DECODE_TOKENS = 16  # cached decoding steps then timed
DEFAULT_THREADS = torch.get_num_threads()  # PyTorch's default before --threads: every physical core
CONTROL_WINDOW = 64  # keys the control's one-query attention reads (the decoding table's shortest context)
CLOCK = time.process_time  # --clock: CPU seconds of this process (all its threads), or wall-clock seconds


# ---- the reference models --------------------------------------------------------------------------------


class ReferenceBiLM(nn.Module):
    """ELMo's two language models written plainly: one multi-layer ``nn.LSTM`` per direction.

    Same parameters as :class:`~bertcourse.elmo.ELMo` (copied from it), no residual connections between
    layers (``nn.LSTM`` stacks have none; they hold no parameters), dropout between layers from ``nn.LSTM``.
    """

    def __init__(self, elmo: ELMo) -> None:
        super().__init__()
        c = elmo.config
        self.embeddings = nn.Embedding(c.vocab_size, c.d_model)
        lstm = {"num_layers": c.n_layers, "batch_first": True, "proj_size": c.d_model, "dropout": c.dropout}
        self.forward_lm = nn.LSTM(c.d_model, c.d_hidden, **lstm)
        self.backward_lm = nn.LSTM(c.d_model, c.d_hidden, **lstm)
        self.dropout = nn.Dropout(c.dropout)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size)
        self.embeddings.load_state_dict(elmo.embeddings.state_dict())
        self.lm_head.load_state_dict(elmo.lm_head.state_dict())
        for direction, stack in ((self.forward_lm, elmo.forward_lstms), (self.backward_lm, elmo.backward_lstms)):
            for j, layer in enumerate(stack):
                for name, tensor in layer.rnn.state_dict().items():
                    getattr(direction, name.replace("_l0", f"_l{j}")).data.copy_(tensor)

    def _run(self, lstm: nn.LSTM, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.dropout(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = lstm(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def forward(self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor) -> Tensor:
        lengths = attention_mask.sum(dim=1)
        x = self.embeddings(input_ids)  # (B, T, d)
        forward_h = self._run(self.forward_lm, x, lengths)
        backward_h = reverse_padded(self._run(self.backward_lm, reverse_padded(x, lengths), lengths), lengths)
        labels = labels.masked_fill(attention_mask == 0, IGNORE_INDEX)
        forward_logits = self.lm_head(self.dropout(forward_h))[:, :-1]  # position t predicts t + 1
        backward_logits = self.lm_head(self.dropout(backward_h))[:, 1:]  # position t predicts t - 1
        forward_loss = F.cross_entropy(forward_logits.flatten(0, 1), labels[:, 1:].flatten())
        backward_loss = F.cross_entropy(backward_logits.flatten(0, 1), labels[:, :-1].flatten())
        return 0.5 * (forward_loss + backward_loss)


def hf_gpt(config: GPTConfig) -> nn.Module:
    return transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=config.vocab_size, n_embd=config.d_model, n_layer=config.n_layers, n_head=config.n_heads,
            n_inner=config.d_ff, n_positions=config.max_len, resid_pdrop=config.dropout, embd_pdrop=config.dropout,
            attn_pdrop=config.attention_dropout, layer_norm_epsilon=config.layer_norm_eps,
            activation_function="gelu_new", bos_token_id=None, eos_token_id=None, attn_implementation="sdpa",
        )
    )  # fmt: skip


def hf_bert(config: BertConfig) -> nn.Module:
    return transformers.BertForPreTraining(
        transformers.BertConfig(
            vocab_size=config.vocab_size, hidden_size=config.d_model, num_hidden_layers=config.n_layers,
            num_attention_heads=config.n_heads, intermediate_size=config.d_ff, hidden_act="gelu",
            max_position_embeddings=config.max_len, type_vocab_size=config.type_vocab_size,
            hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.attention_dropout,
            layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_token_id, attn_implementation="sdpa",
        )
    )  # fmt: skip


# ---- steps -----------------------------------------------------------------------------------------------


@dataclass
class Runner:
    """One implementation's training step on a cycle of batches, and what a step costs."""

    label: str
    model: nn.Module
    loss: Callable[[nn.Module, Batch], Tensor]
    batches: list[Batch]

    def __post_init__(self) -> None:
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self._cycle = itertools.cycle(self.batches)
        self.tokens_per_batch = statistics.mean(int(b["attention_mask"].sum()) for b in self.batches)

    def step(self) -> None:
        batch = next(self._cycle)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()

    def seconds(self, n: int) -> float:
        start = CLOCK()
        for _ in range(n):
            self.step()
        return (CLOCK() - start) / n

    def flops(self) -> float:
        """Forward + backward FLOPs of one step on each batch, averaged (matmuls and attention)."""
        counts = []
        for batch in self.batches:
            with FlopCounterMode(display=False) as counter:
                self.loss(self.model, batch).backward()
            counts.append(counter.get_total_flops())
        self.model.zero_grad(set_to_none=True)
        return statistics.mean(counts)


def model_loss(model: nn.Module, batch: Batch) -> Tensor:
    return model(**batch).loss


def reference_loss(model: nn.Module, batch: Batch) -> Tensor:
    return model(batch["input_ids"], batch["attention_mask"], batch["labels"])


def matmul_seconds(a: Tensor, b: Tensor, n: int = 3) -> float:
    torch.mm(a, b)
    start = CLOCK()
    for _ in range(n):
        torch.mm(a, b)
    return (CLOCK() - start) / n


# ---- the tables ------------------------------------------------------------------------------------------


def training_table(args: argparse.Namespace) -> None:
    preset = PRESETS[args.preset]
    data = pretraining_corpus(preset)
    configs = preset_configs(preset, data.tokenizer.vocab_size)

    def batches(name: str) -> list[Batch]:
        source = data.data(name, preset, seed=0).batches(preset.batch_size)  # the experiment's own batches
        return [source.batch_at(step) for step in range(1, args.batches + 1)]

    torch.manual_seed(0)
    elmo = ELMo(configs["elmo"])
    hf_g, hf_b = hf_gpt(configs["gpt"]), hf_bert(configs["bert"])
    course_g, course_b = gpt_from_hf(hf_g), bert_from_hf(hf_b)
    assert course_g.config == configs["gpt"] and course_b.config == configs["bert"], "conversion changed a size"
    text, pairs = batches("gpt"), batches("bert")
    pairs_hf = [dict(b) for b in pairs]
    runners = {
        "elmo": (Runner("course ELMo", elmo, model_loss, text), Runner("2 nn.LSTM LMs", ReferenceBiLM(elmo),
                                                                         reference_loss, text)),
        "gpt": (Runner("course GPT", course_g, model_loss, text), Runner("HF GPT2LMHead", hf_g, model_loss, text)),
        "bert": (Runner("course BERT", course_b, model_loss, pairs),
                 Runner("HF BertForPreTr.", hf_b, model_loss, pairs_hf)),
    }  # fmt: skip
    runners = {k: pair for k, pair in runners.items() if k in args.models}
    params = {k: sum(p.numel() for p in pair[0].model.parameters()) for k, pair in runners.items()}
    print(
        f"preset {preset.name}: batch {preset.batch_size}, {args.batches} real batches cycled "
        f"(mean {statistics.mean(int(b['attention_mask'].sum()) for b in text):.0f} real tokens of "
        f"{statistics.mean(b['input_ids'].numel() for b in text):.0f} positions); parameters "
        + ", ".join(f"{k} {v:,}" for k, v in params.items())
    )
    # Model FLOPs: what the reference implementation of a pair computes, credited to both of the pair.
    flops = {r.label: pair[1].flops() for pair in runners.values() for r in pair}
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE) for _ in range(2))
    for pair in runners.values():  # warm-up: allocator, thread pools, lazy optimizer state
        for r in pair:
            for _ in range(3):
                r.step()
    times: dict[str, list[float]] = {r.label: [] for pair in runners.values() for r in pair}
    ratios: dict[str, list[float]] = {k: [] for k in runners}
    elmo_vs: list[float] = []
    peak: list[float] = []
    for rnd in range(args.rounds):
        peak.append(2 * MATMUL_SIZE**3 / matmul_seconds(a, b))
        for key, (course, reference) in runners.items():
            order = (course, reference) if rnd % 2 == 0 else (reference, course)
            got = {r.label: r.seconds(args.steps) for r in order}
            for label, t in got.items():
                times[label].append(t)
            ratios[key].append(got[course.label] / got[reference.label])
        if {"elmo", "gpt", "bert"} <= set(runners):
            transformer = 0.5 * (times["course GPT"][-1] + times["course BERT"][-1])
            elmo_vs.append(times["course ELMo"][-1] / transformer)
    matmul = statistics.median(peak)
    print(
        f"\nmatmul reach: {matmul / 1e9:.1f} GFLOP/s ({MATMUL_SIZE}^2 float32, median of {args.rounds}); "
        f"{args.rounds} rounds x {args.steps} steps; step = forward, backward, clip, AdamW"
    )
    header = ("implementation", "ms/step", "tokens/s", "MFLOP/step", "GFLOP/s", "share of matmul")
    print("{:<17} {:>8} {:>9} {:>11} {:>8} {:>16}".format(*header))
    for pair in runners.values():
        for r in pair:
            t = statistics.median(times[r.label])
            rate = flops[r.label] / t
            print(
                f"{r.label:<17} {1e3 * t:>8.1f} {r.tokens_per_batch / t:>9,.0f} {flops[r.label] / 1e6:>11.1f} "
                f"{rate / 1e9:>8.2f} {100 * rate / matmul:>15.1f}%"
            )
    print("\nratios of step times (median over rounds, [quartiles]; below 1 = course faster):")
    names = {"elmo": "ELMo / 2 nn.LSTM LMs", "gpt": "GPT / HF GPT-2", "bert": "BERT / HF BERT"}
    for key, values in ratios.items():
        print(f"  {names[key]:<28} {_summary(values)}")
    if elmo_vs:
        print(f"  {'ELMo / mean(GPT, BERT)':<28} {_summary(elmo_vs)}   (equal parameter counts)")


def _summary(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.3f} [{q1:.3f}-{q3:.3f}]"


@contextlib.contextmanager
def _attention_window(keys: int, read_all: bool = False) -> Iterator[None]:
    """The decoding table's control: within it, a one-query attention reads only the last ``keys`` cached
    positions, so the step does the same work at any context but for reading the cache (timing only: the
    model it makes is wrong). With ``read_all`` the step also streams every cached key and value once (a sum
    of each) before attending over the window: the bytes of the full read without attention's arithmetic."""
    fused = F.scaled_dot_product_attention

    def windowed(q: Tensor, k: Tensor, v: Tensor, *args: object, **kwargs: object) -> Tensor:
        if q.shape[-2] == 1:
            if read_all:
                k.sum(), v.sum()  # every cached position read once, as the full attention reads it
            k, v = k[..., -keys:, :], v[..., -keys:, :]  # (B, h, L_k, d) -> (B, h, keys, d)
        return fused(q, k, v, *args, **kwargs)  # type: ignore[arg-type]

    with mock.patch("bertcourse.attention.F.scaled_dot_product_attention", windowed):
        yield


def _decode(
    model: GPT, ids: Tensor, L: int, clock: Callable[[], float], cache_dtype: torch.dtype | None = None
) -> tuple[float, tuple[tuple[Tensor, Tensor], ...]]:
    """Seconds per token of ``DECODE_TOKENS`` cached steps after a prefill of the first ``L`` tokens and
    ``DECODE_WARMUP`` untimed steps, and the cache they leave (L + ``DECODE_WARMUP + DECODE_TOKENS``
    positions); ``cache_dtype`` casts the prefill's cache first, as ``GPT.generate`` does."""
    past = model(ids[:, :L], use_cache=True).past_key_values
    if cache_dtype is not None:
        past = tuple(cache_to(layer, cache_dtype) for layer in past)

    def steps(first: int, n: int, past: tuple[tuple[Tensor, Tensor], ...]) -> tuple[tuple[Tensor, Tensor], ...]:
        for t in range(first, first + n):
            past = model(ids[:, t : t + 1], past_key_values=past, use_cache=True).past_key_values
        return past

    past = steps(L, DECODE_WARMUP, past)  # untimed: they re-warm what the prefill evicted
    start = clock()
    past = steps(L + DECODE_WARMUP, DECODE_TOKENS, past)
    return (clock() - start) / DECODE_TOKENS, past


def decoding_table(args: argparse.Namespace, threads: int) -> None:
    """The decoding table with ``threads`` torch threads (restored after), timed by ``--clock`` at one
    thread and by the wall clock at several."""
    clock = CLOCK if threads == 1 else time.perf_counter
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    preset = PRESETS[args.preset]
    length = max(DECODE_CONTEXTS) + DECODE_WARMUP + DECODE_TOKENS + 1
    config = GPTConfig(
        preset.vocab_size, preset.d_model, preset.n_layers, preset.n_heads, preset.d_ff, max_len=length
    )  # fmt: skip
    torch.manual_seed(0)
    model = GPT(config).eval()
    ids = torch.randint(config.vocab_size, (1, length))
    columns = ("cached", "no cache", "attention alone", "control", "control + read", "bf16 cache")
    times: dict[str, dict[int, list[float]]] = {c: {L: [] for L in DECODE_CONTEXTS} for c in columns}
    head_dim = config.d_model // config.n_heads
    with torch.no_grad():
        for _ in range(args.rounds):
            for L in DECODE_CONTEXTS:
                seconds, past = _decode(model, ids, L, clock)
                times["cached"][L].append(seconds)
                with _attention_window(CONTROL_WINDOW):
                    times["control"][L].append(_decode(model, ids, L, clock)[0])
                with _attention_window(CONTROL_WINDOW, read_all=True):
                    times["control + read"][L].append(_decode(model, ids, L, clock)[0])
                times["bf16 cache"][L].append(_decode(model, ids, L, clock, torch.bfloat16)[0])
                start = clock()
                for _ in range(2):
                    model(ids[:, : L + 1])
                times["no cache"][L].append((clock() - start) / 2)
                q = torch.randn(1, config.n_heads, 1, head_dim)  # one query per head, (B, h, 1, d)
                kv = [(k.contiguous(), v.contiguous()) for k, v in past]  # each layer's cache, (B, h, ~L, d)
                start = clock()
                for _ in range(DECODE_TOKENS):
                    for k, v in kv:
                        F.scaled_dot_product_attention(q, k, v)  # (B, h, 1, d): the cache read once
                times["attention alone"][L].append((clock() - start) / DECODE_TOKENS)
    print(
        f"\nGPT decoding, batch 1, d_model={config.d_model}, {config.n_layers} layers, {threads} thread(s), "
        f"{'CPU' if clock is time.process_time else 'wall'} clock; per-token ms (median of {args.rounds} rounds; "
        f"cached: mean of {DECODE_TOKENS} steps after a prefill of the context and {DECODE_WARMUP} untimed steps; "
        "attention alone: one query over every layer's cache; control: cached steps whose attention reads "
        f"only the last {CONTROL_WINDOW} keys; control + read: the control, each step also summing every cached "
        "key and value; bf16 cache: cached steps with the cache in bfloat16)"
    )
    print(
        f"{'context':>8} {'cached':>8} {'no cache':>9} {'cached / cached@64':>19} {'attention alone':>16} "
        f"{'control':>8} {'control / control@64':>21} {'control + read':>15} {'ratio':>6} "
        f"{'bf16 cache':>11} {'bf16 / bf16@64':>15}"
    )
    first, last = DECODE_CONTEXTS[0], DECODE_CONTEXTS[-1]
    median = {c: {L: statistics.median(v) for L, v in times[c].items()} for c in columns}
    for L in DECODE_CONTEXTS:
        c, f, a, w, r, h = (median[col][L] for col in columns)
        print(
            f"{L:>8} {1e3 * c:>8.3f} {1e3 * f:>9.3f} {c / median['cached'][first]:>19.2f} {1e3 * a:>16.3f} "
            f"{1e3 * w:>8.3f} {w / median['control'][first]:>21.2f} {1e3 * r:>15.3f} "
            f"{r / median['control + read'][first]:>6.2f} {1e3 * h:>11.3f} {h / median['bf16 cache'][first]:>15.2f}"
        )
    for column in ("cached", "control", "control + read", "bf16 cache"):
        ratio = [b / a for a, b in zip(times[column][first], times[column][last], strict=True)]
        print(f"{column} per-token time, context {last} / {first}: {_summary(ratio)}")
    grown = {
        c: [1e3 * (b - a) for a, b in zip(times[c][first], times[c][last], strict=True)]
        for c in ("cached", "attention alone", "control", "control + read", "bf16 cache")
    }
    print(
        f"added from {first} to {last} tokens, ms per token: cached step {_summary(grown['cached'])}, "
        f"attention over the cache alone {_summary(grown['attention alone'])}, control {_summary(grown['control'])}, "
        f"control + read {_summary(grown['control + read'])}, bf16 cache {_summary(grown['bf16 cache'])}"
    )
    torch.set_num_threads(before)


def profile(args: argparse.Namespace) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    preset = PRESETS[args.preset]
    data = pretraining_corpus(preset)
    name = args.profile
    config = preset_configs(preset, data.tokenizer.vocab_size)[name]
    torch.manual_seed(0)
    model_class = {"elmo": ELMo, "gpt": GPT, "bert": BertForPreTraining}[name]
    source = data.data(name, preset, seed=0).batches(preset.batch_size)
    batches = [source.batch_at(step) for step in range(1, 9)]
    runner = Runner(name, model_class(replace(config)), model_loss, batches)
    for _ in range(3):
        runner.step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(8):
            runner.step()
    print(f"\n--- profile: course {name}, 8 steps ---")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="course", choices=sorted(PRESETS))
    parser.add_argument("--rounds", type=positive_int, default=9, help="alternating rounds (ratios are their medians)")
    parser.add_argument("--steps", type=positive_int, default=5, help="training steps per implementation per round")
    parser.add_argument("--batches", type=positive_int, default=8, help="real batches each model reads in turn")
    parser.add_argument("--models", nargs="+", default=["elmo", "gpt", "bert"], choices=["elmo", "gpt", "bert"])
    parser.add_argument("--no-train", dest="train", action="store_false", help="skip the training table")
    parser.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decoding table")
    parser.add_argument(
        "--decode-threads", type=positive_int, nargs="+", default=sorted({1, DEFAULT_THREADS}), metavar="N",
        help=f"one decoding table per thread count (default: 1 and PyTorch's default here, {DEFAULT_THREADS})",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch threads (1: what each of --jobs auto's workers uses)"
    )
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu",
        help="cpu: CPU time of this process, robust to other processes on a shared machine; wall: elapsed time",
    )  # fmt: skip
    parser.add_argument("--profile", choices=["elmo", "gpt", "bert"], help="also profile one course model's step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"CPU, {torch.get_num_threads()} threads; torch {torch.__version__}, transformers {transformers.__version__}")
    if args.train:
        training_table(args)
    if args.decode:
        for threads in args.decode_threads:
            decoding_table(args, threads)
    if args.profile:
        profile(args)


if __name__ == "__main__":
    main()
