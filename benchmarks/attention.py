"""Time and peak memory of the math vs fused (torch) attention backends, and the wrapper's overhead.

    python benchmarks/attention.py                   # CPU, and CUDA when present
    python benchmarks/attention.py --device cpu --lengths 128 512 --repeats 5

For each sequence length L it times ``scaled_dot_product_attention(..., backend=b)`` (forward only,
median of ``--repeats`` blocked runs) and measures peak memory: on CUDA with
``torch.cuda.max_memory_allocated``; on CPU as the growth of the process's peak resident set in a
fresh child process (Linux only). The overhead line compares
``backend="torch"`` with calling ``torch.nn.functional.scaled_dot_product_attention`` directly, the two
timed alternately in one process; the goal is at most 3%.

One run on an NVIDIA H100 (torch 2.11, B = h = 8, d = 64, median of 11 runs, peak extra GPU memory of one
call), the numbers chapter 01 points to:

    | L    | dtype   | math    | torch (fused) | speed-up | memory math | memory fused |
    | ---: | ------- | ------: | ------------: | -------: | ----------: | -----------: |
    |  512 | float32 | 0.29 ms | 0.22 ms       |  1.3x    |  136 MiB    |  8 MiB       |
    |  512 | float16 | 0.15 ms | 0.07 ms       |  2.3x    |   68 MiB    |  4 MiB       |
    | 2048 | float16 | 1.50 ms | 0.20 ms       |  7.4x    | 1040 MiB    | 16 MiB       |
    | 4096 | float16 | 6.35 ms | 0.63 ms       | 10.0x    | 4128 MiB    | 32 MiB       |
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bertcourse.attention import scaled_dot_product_attention
from bertcourse.validation import positive_int


def make_inputs(L: int, batch: int, heads: int, d: int, device: str, dtype: torch.dtype):
    g = torch.Generator(device=device).manual_seed(0)
    return tuple(torch.randn(batch, heads, L, d, device=device, dtype=dtype, generator=g) for _ in range(3))


def time_call(fn, repeats: int) -> float:
    """Median seconds per call over ``repeats`` blocked measurements (CUDA synchronised by Timer)."""
    fn()  # warm-up
    times = [Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=0.2).median for _ in range(repeats)]
    return statistics.median(times)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _cpu_peak_child(args, queue) -> None:
    """Peak resident-set growth of one call, in a fresh process (Linux: reset VmHWM via clear_refs)."""
    L, batch, heads, d, backend, causal = args
    small = make_inputs(16, batch, heads, d, "cpu", torch.float32)
    scaled_dot_product_attention(*small, is_causal=causal, backend=backend)  # start thread pools first
    q, k, v = make_inputs(L, batch, heads, d, "cpu", torch.float32)
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    scaled_dot_product_attention(q, k, v, is_causal=causal, backend=backend)
    queue.put((_status_kib("VmHWM") - before) * 1024)


def peak_bytes(L, batch, heads, d, backend, causal, device, dtype) -> int:
    if device == "cuda":
        q, k, v = make_inputs(L, batch, heads, d, device, dtype)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        scaled_dot_product_attention(q, k, v, is_causal=causal, backend=backend)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child, args=((L, batch, heads, d, backend, causal), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def overhead(L, batch, heads, d, device, dtype, repeats: int) -> tuple[float, float, float]:
    """Median over alternating rounds of (wrapper time, direct time); returns them and the ratio."""
    q, k, v = make_inputs(L, batch, heads, d, device, dtype)

    def ours():
        return scaled_dot_product_attention(q, k, v, is_causal=True, backend="torch")

    def direct():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    ours_t, direct_t = [], []
    for _ in range(repeats):
        ours_t.append(time_call(ours, 1))
        direct_t.append(time_call(direct, 1))
    ratios = [a / b for a, b in zip(ours_t, direct_t, strict=True)]
    return statistics.median(ours_t), statistics.median(direct_t), statistics.median(ratios)


def run(device: str, lengths: list[int], batch: int, heads: int, d: int, repeats: int, causal: bool) -> None:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n## {name}  B={batch} h={heads} d={d} dtype={str(dtype).removeprefix('torch.')} causal={causal}")
    print(f"{'L':>6} {'math ms':>10} {'torch ms':>10} {'speed-up':>9} {'math MiB':>10} {'torch MiB':>10}")
    for L in lengths:
        row = {}
        for backend in ("math", "torch"):
            inputs = make_inputs(L, batch, heads, d, device, dtype)
            call = partial(scaled_dot_product_attention, *inputs, is_causal=causal, backend=backend)
            seconds = time_call(call, repeats)
            del inputs, call
            row[backend] = (seconds, peak_bytes(L, batch, heads, d, backend, causal, device, dtype))
        (tm, mm), (tt, mt) = row["math"], row["torch"]
        print(f"{L:>6} {tm * 1e3:>10.3f} {tt * 1e3:>10.3f} {tm / tt:>8.2f}x {mm / 2**20:>10.1f} {mt / 2**20:>10.1f}")
    print("\noverhead of backend='torch' over calling F.scaled_dot_product_attention directly (causal):")
    for L in (lengths[0], lengths[len(lengths) // 2], lengths[-1]):
        ours, direct, ratio = overhead(L, batch, heads, d, device, dtype, repeats)
        print(
            f"  L={L:>5}: wrapper {ours * 1e3:.3f} ms, direct {direct * 1e3:.3f} ms, overhead {100 * (ratio - 1):+.1f}%"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--lengths", type=positive_int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument("--heads", type=positive_int, default=8)
    parser.add_argument("--d", type=positive_int, default=64)
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--no-causal", dest="causal", action="store_false")
    args = parser.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("\n(no CUDA device: GPU rows skipped)")
            continue
        run(device, args.lengths, args.batch, args.heads, args.d, args.repeats, args.causal)


if __name__ == "__main__":
    main()
