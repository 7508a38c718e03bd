"""``benchmarks/throughput.py``: its decoding control changes only what a one-query attention reads, and the
decoding table runs from its command, once per thread count, and prints every context and ratio the README
quotes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.throughput import DECODE_CONTEXTS, DECODE_WARMUP, _attention_window
from bertcourse.gpt import GPT, GPTConfig

ROOT = Path(__file__).resolve().parent.parent


def _next_logits(model: GPT, ids: torch.Tensor, context: int) -> torch.Tensor:
    past = model(ids[:, :context], use_cache=True).past_key_values
    return model(ids[:, context : context + 1], past_key_values=past, use_cache=True).logits  # (1, 1, V)


def test_the_control_reads_only_the_last_keys_of_a_cached_step_and_is_undone_after() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(50, 32, 2, 2, 64, max_len=200)).eval()
    ids = torch.randint(50, (1, 200))
    fused = F.scaled_dot_product_attention
    with torch.no_grad():
        exact = {L: _next_logits(model, ids, L) for L in (7, 150)}
        with _attention_window(8):
            windowed = {L: _next_logits(model, ids, L) for L in (7, 150)}
            prefill = model(ids[:, :150]).logits  # many queries: untouched by the control
        with _attention_window(8, read_all=True):  # reading every cached position changes no number
            read = {L: _next_logits(model, ids, L) for L in (7, 150)}
        assert F.scaled_dot_product_attention is fused  # restored on leaving
        assert all(torch.equal(read[L], windowed[L]) for L in (7, 150))
        # 7 cached keys + the new one fit the window: nothing changes; beyond it the step no longer sees the first keys.
        torch.testing.assert_close(windowed[7], exact[7], rtol=0, atol=0)
        assert not torch.allclose(windowed[150], exact[150], atol=1e-4)
        torch.testing.assert_close(prefill, model(ids[:, :150]).logits, rtol=0, atol=0)


def test_the_decoding_table_runs_from_its_command_once_per_thread_count() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--no-train", "--rounds", "1", "--decode-threads", "1", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    contexts = {str(L) for L in DECODE_CONTEXTS}
    rows = [fields for fields in map(str.split, result.stdout.splitlines()) if fields and fields[0] in contexts]
    assert [int(row[0]) for row in rows] == 2 * list(DECODE_CONTEXTS)
    assert all(float(value) > 0 for row in rows for value in row[1:])
    assert all(len(row) == 11 for row in rows)  # the context and ten figures
    # One thread by the CPU clock (--clock's default); two by the wall clock, whose CPU time counts their waits.
    headers = [line for line in result.stdout.splitlines() if line.startswith("GPT decoding")]
    assert len(headers) == 2
    assert "1 thread(s), CPU clock" in headers[0] and "2 thread(s), wall clock" in headers[1]
    assert f"{DECODE_WARMUP} untimed steps" in headers[0]
    for column in ("cached", "control", "control + read", "bf16 cache"):
        assert result.stdout.count(f"\n{column} per-token time, context 1024 / 64") == 2
