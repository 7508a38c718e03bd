"""Training-step time of the course BERT and GPT against Hugging Face, at the same config and weights.

    python benchmarks/vs_hf.py                                  # CPU, forward + backward
    python benchmarks/vs_hf.py --optimizer                      # ... + AdamW step
    python benchmarks/vs_hf.py --device cuda --batch 32         # bf16 autocast, tokens / second
    python benchmarks/vs_hf.py --profile                        # where the course's time goes (torch.profiler)

Models: Hugging Face ``BertForMaskedLM`` (MLM loss on 15% of the positions) and ``GPT2LMHeadModel``
(next-token loss), both with ``attn_implementation="sdpa"`` (their default and fastest), in train mode
with dropout; the course models are converted from them with ``bertcourse.pretrained`` so the weights are
equal. One step is ``zero_grad``, forward, loss, backward (and ``AdamW.step`` with ``--optimizer``).

Timing: ``--rounds`` rounds; in each, both implementations run ``--steps`` steps, in an order that
alternates from round to round, so slow phases of a shared, noisy machine hit both alike. The reported
ratio is the median over rounds of (course time / Hugging Face time); below 1.0 the course is faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bertcourse.pretrained import bert_from_hf, gpt_from_hf
from bertcourse.validation import positive_int

Step = Callable[[], None]
PROFILE_ROWS = 18  # operators listed per profile


def hf_models(args: argparse.Namespace) -> dict[str, torch.nn.Module]:
    """The two Hugging Face models at the benchmark's config, random weights."""
    bert = transformers.BertConfig(
        vocab_size=args.vocab,
        hidden_size=args.d_model,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.d_ff,
        max_position_embeddings=args.length,
        attn_implementation="sdpa",
    )
    gpt2 = transformers.GPT2Config(
        vocab_size=args.vocab,
        n_embd=args.d_model,
        n_layer=args.layers,
        n_head=args.heads,
        n_inner=args.d_ff,
        n_positions=args.length,
        bos_token_id=None,  # GPT-2's 50256 lies outside a small vocabulary; no generation here
        eos_token_id=None,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    return {"BERT (MLM)": transformers.BertForMaskedLM(bert), "GPT (LM)": transformers.GPT2LMHeadModel(gpt2)}


def batch(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, torch.Tensor]:
    """Random token ids, an all-ones attention mask and the labels of the model's objective."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, args.vocab, (args.batch, args.length), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if name.startswith("BERT"):
        masked = torch.rand(ids.shape, generator=g) < 0.15
        out["labels"] = ids.masked_fill(~masked, -100)  # loss on the 15% masked positions only
    else:
        out["labels"] = ids  # unshifted, as both libraries shift inside
    return {k: v.to(device) for k, v in out.items()}


def train_step(model: torch.nn.Module, inputs: dict[str, torch.Tensor], args: argparse.Namespace) -> Step:
    """One closure = one training step of ``model`` on ``inputs``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if args.optimizer else None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if args.device == "cuda" and not args.fp32 else nullcontext()
    )

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        if optimizer is not None:
            optimizer.step()

    return step


def seconds(step: Step, n: int, device: torch.device) -> float:
    """Seconds per step, averaged over ``n`` consecutive steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / n


def compare(course: Step, hf: Step, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Alternating rounds; the median per-round ratio course / HF and the median step times."""
    for step in (course, hf, course, hf):  # warm-up: allocator, thread pools, kernels, lazy optimizer state
        step()
    ratios, t_course, t_hf = [], [], []
    for r in range(args.rounds):
        order = [("course", course), ("hf", hf)] if r % 2 == 0 else [("hf", hf), ("course", course)]
        times = {who: seconds(step, args.steps, device) for who, step in order}
        ratios.append(times["course"] / times["hf"])
        t_course.append(times["course"])
        t_hf.append(times["hf"])
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {
        "course_ms": 1e3 * statistics.median(t_course),
        "hf_ms": 1e3 * statistics.median(t_hf),
        "ratio": statistics.median(ratios),
        "ratio_q1": q1,
        "ratio_q3": q3,
    }


def profile(step: Step, label: str, device: torch.device) -> None:
    """Print the operators that take the most time in a few steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    with torch_profile(activities=activities) as prof:
        for _ in range(3):
            step()
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"\n--- profile: {label} (3 steps) ---")
    print(prof.key_averages().table(sort_by=sort, row_limit=PROFILE_ROWS))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=positive_int, default=8)
    parser.add_argument("--length", type=positive_int, default=128)
    parser.add_argument("--d-model", type=positive_int, default=256)
    parser.add_argument("--layers", type=positive_int, default=4)
    parser.add_argument("--heads", type=positive_int, default=4)
    parser.add_argument("--d-ff", type=positive_int, default=1024)
    parser.add_argument("--vocab", type=positive_int, default=8000)
    parser.add_argument(
        "--rounds", type=positive_int, default=15, help="alternating rounds (the ratio is their median)"
    )
    parser.add_argument("--steps", type=positive_int, default=3, help="training steps per implementation per round")
    parser.add_argument("--optimizer", action="store_true", help="include an AdamW step in each training step")
    parser.add_argument("--fp32", action="store_true", help="on CUDA, run in float32 instead of bf16 autocast")
    parser.add_argument("--models", nargs="+", default=["BERT", "GPT"], choices=["BERT", "GPT"])
    parser.add_argument("--profile", action="store_true", help="profile both implementations after timing")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")

    precision = "fp32" if device.type == "cpu" or args.fp32 else "bf16 autocast"
    what = "forward + backward" + (" + AdamW step" if args.optimizer else "")
    print(
        f"device={device} ({precision}), threads={torch.get_num_threads()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    print(
        f"B={args.batch} T={args.length} d={args.d_model} layers={args.layers} heads={args.heads} "
        f"d_ff={args.d_ff} vocab={args.vocab}; step = {what}; {args.rounds} rounds x {args.steps} steps"
    )
    header = ("model", "course ms", "HF ms", "ratio", "IQR", "course tok/s", "HF tok/s")
    print("{:<11} {:>10} {:>9} {:>7} {:>13} {:>13} {:>10}".format(*header))
    tokens = args.batch * args.length
    for name, hf in hf_models(args).items():
        if name.split()[0] not in args.models:
            continue
        course = bert_from_hf(hf) if name.startswith("BERT") else gpt_from_hf(hf)
        hf, course = hf.to(device).train(), course.to(device).train()
        inputs = batch(name, args, device)
        steps = {"course": train_step(course, inputs, args), "hf": train_step(hf, inputs, args)}
        r = compare(steps["course"], steps["hf"], args, device)
        print(
            f"{name:<11} {r['course_ms']:>10.1f} {r['hf_ms']:>9.1f} {r['ratio']:>7.3f} "
            f"{r['ratio_q1']:>6.3f}-{r['ratio_q3']:<6.3f} {tokens / r['course_ms'] * 1e3:>13,.0f} "
            f"{tokens / r['hf_ms'] * 1e3:>10,.0f}"
        )
        if args.profile:
            profile(steps["course"], f"course {name}", device)
            profile(steps["hf"], f"Hugging Face {name}", device)


if __name__ == "__main__":
    main()
