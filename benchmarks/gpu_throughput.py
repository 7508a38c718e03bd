"""The pre-training engine on a GPU: tokens/s and MFU at bf16 at a preset's sizes, and 1 vs 2 processes.

    python benchmarks/gpu_throughput.py                 # a CUDA machine: the full preset's three models, bf16
    python benchmarks/gpu_throughput.py --models bert --steps 400
    python benchmarks/gpu_throughput.py --device cpu --preset tiny --steps 12 --batch-size 8 --toy-docs 200 \\
        --seq-len 32 --processes 1 2                    # a smoke run on a CPU: no bf16, no MFU (no peak known)

Each measurement is one run of ``python -m bertcourse.pretrain`` (the engine: AdamW, clipping, the
schedule, DistributedDataParallel under torchrun) with the preset's model sizes (``preset_configs``: ELMo's
at matched parameters), its vocabulary size, batch and documents of the toy language, ``--bf16`` on CUDA,
no evaluation and no checkpoint but the last. The engine logs tokens/s over each window of ``--log-every``
steps (after a CUDA synchronize) and ``pretrain`` adds MFU against the device's dense bf16 peak
(``engine.flops.PEAK_BF16_FLOPS``; PaLM's definition, 6 FLOPs per parameter and token plus attention). The
first window holds the warm-up (CUDA context, kernel selection), so figures are medians of the later ones.

With ``--processes 1 2`` (the default when two or more GPUs are visible) each model also runs under
``torchrun --standalone --nproc_per_node N`` with the same global batch, and the table gives the speed-up
of N processes over one. Record the output with the device and the command in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bertcourse.experiments.setup import PRESETS, preset_configs
from bertcourse.validation import positive_int

MODELS = ("elmo", "gpt", "bert")


def size_flags(preset_name: str, model: str) -> list[str]:
    """``pretrain`` flags for ``model`` at the preset's sizes (ELMo: its matched-parameter LSTM widths)."""
    preset = PRESETS[preset_name]
    config = preset_configs(preset, preset.vocab_size)[model]
    names = ("d_model", "n_layers", "d_hidden") if model == "elmo" else ("d_model", "n_layers", "n_heads", "d_ff")
    flags = [f"--{name.replace('_', '-')}={getattr(config, name)}" for name in names]
    return [*flags, f"--vocab-size={preset.vocab_size}", f"--dropout={preset.dropout}"]


def command(args: argparse.Namespace, model: str, processes: int, out: Path) -> list[str]:
    """The ``pretrain`` command line of one measurement (under torchrun for more than one process)."""
    launcher = [sys.executable, "-m", "bertcourse.pretrain"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                    "-m", "bertcourse.pretrain"]  # fmt: skip
    return [
        *launcher, f"--model={model}", f"--out={out}", f"--steps={args.steps}", f"--batch-size={args.batch_size}",
        f"--seq-len={args.seq_len}", f"--toy-docs={args.toy_docs}", f"--log-every={args.log_every}",
        "--eval-every=0", f"--device={args.device}", "--no-progress", *size_flags(args.preset, model),
        *(["--bf16"] if args.device.startswith("cuda") else []),
    ]  # fmt: skip


def summarise(log: Path) -> dict[str, float | None]:
    """Median tokens/s and MFU over the logged windows after the first (the warm-up), from ``log.jsonl``."""
    windows = [r for r in map(json.loads, log.read_text().splitlines()) if "tokens_per_s" in r]
    if len(windows) < 2:
        raise ValueError(f"{log} holds {len(windows)} throughput windows; run more --steps than --log-every")
    steady = windows[1:]
    mfu = [r["mfu"] for r in steady if "mfu" in r]
    return {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
        "mfu": statistics.median(mfu) if mfu else None,
        "windows": len(steady),
    }


def measure(args: argparse.Namespace, model: str, processes: int, scratch: Path) -> dict[str, float | None]:
    out = scratch / f"{model}-{processes}"  # a fresh folder: pretrain refuses one holding a checkpoint
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")} if processes > 1 else None
    subprocess.run(command(args, model, processes, out), check=True, stdout=subprocess.DEVNULL, env=env)
    return summarise(out / "log.jsonl")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--preset", default="full", choices=sorted(PRESETS), help="sizes and data (default full)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--steps", type=positive_int, default=300, help="optimizer steps per measurement")
    parser.add_argument("--log-every", type=positive_int, default=50, help="steps per throughput window")
    parser.add_argument("--batch-size", type=positive_int, help="global batch (default: the preset's)")
    parser.add_argument("--seq-len", type=positive_int, help="tokens per example (default: the preset's max_len)")
    parser.add_argument("--toy-docs", type=positive_int, help="documents of the toy language (default: the preset's)")
    parser.add_argument(
        "--processes", type=positive_int, nargs="+", default=[1, 2] if torch.cuda.device_count() >= 2 else [1],
        help="process counts to compare under torchrun (default 1 2 with two or more GPUs, else 1)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    args.batch_size = preset.batch_size if args.batch_size is None else args.batch_size
    args.seq_len = preset.max_len if args.seq_len is None else args.seq_len
    args.toy_docs = preset.n_docs if args.toy_docs is None else args.toy_docs
    if args.steps < 2 * args.log_every:
        parser.error(f"--steps ({args.steps}) must cover two --log-every windows ({args.log_every}) or more")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{name}; torch {torch.__version__}; preset {args.preset} sizes, batch {args.batch_size} x {args.seq_len}")
    print(f"{'model':<6} {'processes':>9} {'tokens/s':>12} {'MFU':>7} {'vs 1 process':>13}")
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            single: float | None = None
            for processes in args.processes:
                result = measure(args, model, processes, Path(scratch))
                rate = float(result["tokens_per_s"])  # type: ignore[arg-type]
                single = rate if processes == 1 else single
                mfu = "n/a" if result["mfu"] is None else f"{100 * result['mfu']:.1f}%"
                speedup = f"{rate / single:.2f}x" if single else ""
                print(f"{model:<6} {processes:>9} {rate:>12,.0f} {mfu:>7} {speedup:>13}", flush=True)


if __name__ == "__main__":
    main()
