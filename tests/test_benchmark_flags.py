"""Every benchmark refuses a count below one by the flag's name, before it builds or runs anything (with
``type=int`` a 0 ran on and failed deep inside: an empty median, a division by zero, an empty batch)."""

from __future__ import annotations

import importlib

import pytest

COUNTS = {
    "attention": ["--lengths", "--batch", "--heads", "--d", "--repeats"],
    "vs_hf": ["--batch", "--length", "--d-model", "--layers", "--heads", "--d-ff", "--vocab", "--rounds", "--steps"],
    "both_cue_diagnosis": ["--jobs"],
    "nsp_diagnosis": ["--jobs"],
    "gpu_throughput": ["--steps", "--log-every", "--batch-size", "--seq-len", "--toy-docs", "--processes"],
    "throughput": ["--rounds", "--steps", "--batches", "--threads", "--decode-threads"],
}


@pytest.mark.parametrize(("name", "flag"), [(name, flag) for name, flags in COUNTS.items() for flag in flags])
def test_a_count_below_one_is_refused_by_name(name: str, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"benchmarks.{name}").main
    with pytest.raises(SystemExit) as exit_info:
        main([flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a positive integer, got '0'" in capsys.readouterr().err
