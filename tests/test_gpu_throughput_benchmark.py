"""``benchmarks/gpu_throughput.py`` (the GPU throughput and MFU check): it runs ``pretrain`` at the preset's
sizes, asks for bf16 only on CUDA, reads the steady windows of the log, and runs end to end on a CPU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks.gpu_throughput import command, main, size_flags, summarise
from bertcourse.experiments.setup import PRESETS, preset_configs


def test_size_flags_are_the_presets_matched_configs() -> None:
    configs = preset_configs(PRESETS["full"], PRESETS["full"].vocab_size)
    elmo = dict(flag.removeprefix("--").split("=") for flag in size_flags("full", "elmo"))
    bert = dict(flag.removeprefix("--").split("=") for flag in size_flags("full", "bert"))
    assert (int(elmo["d-model"]), int(elmo["d-hidden"])) == (configs["elmo"].d_model, configs["elmo"].d_hidden)
    assert (int(bert["d-model"]), int(bert["n-heads"]), int(bert["d-ff"])) == (256, 4, 1024)
    assert int(bert["vocab-size"]) == 1024


def test_bf16_only_on_cuda_and_torchrun_only_for_several_processes(tmp_path: Path) -> None:
    args = argparse.Namespace(
        steps=10, batch_size=8, seq_len=32, toy_docs=100, log_every=5, device="cpu", preset="tiny"
    )  # fmt: skip
    cpu = command(args, "gpt", 1, tmp_path)
    assert "--bf16" not in cpu and "torch.distributed.run" not in cpu
    args.device = "cuda"
    gpu = command(args, "gpt", 2, tmp_path)
    assert "--bf16" in gpu and "--nproc_per_node=2" in gpu


def test_summarise_drops_the_warm_up_window(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    records = [{"step": 1, "loss": 5.0}, {"step": 5, "tokens_per_s": 10.0, "mfu": 0.01}]
    records += [{"step": 5 * i, "tokens_per_s": 100.0 + i, "mfu": 0.1} for i in (2, 3, 4)]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert summarise(log) == {"tokens_per_s": 103.0, "mfu": 0.1, "windows": 3}
    log.write_text(json.dumps(records[1]) + "\n")
    with pytest.raises(ValueError, match="throughput windows"):
        summarise(log)


@pytest.mark.slow
def test_runs_end_to_end_on_a_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--device=cpu", "--preset=tiny", "--models", "bert", "--steps=8", "--log-every=4", "--batch-size=8",
          "--toy-docs=120", "--seq-len=32", "--processes", "1"])  # fmt: skip
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[:2] == ["bert", "1"] and float(row[2].replace(",", "")) > 0 and row[3] == "n/a"
