"""``python -m bertcourse.pretrain``: data parallelism that changes nothing, exact resumption, safe checkpoints.

The central claims:
- 2 processes under torchrun (gloo) and 1 process with the same global batch end with equal weights;
- a run stopped after k steps and resumed ends bit-for-bit equal to an uninterrupted run;
- a corrupted, foreign or other run's checkpoint is refused with an error that says which.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bertcourse.base import CheckpointError
from bertcourse.data.pretraining import PretrainData, derive_seed, split_documents, tokenize_documents
from bertcourse.engine import NonFiniteLossError, flops_per_token, mfu, peak_bf16_flops
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.objectives import (
    IGNORE_INDEX,
    PRETRAINING_TERMS,
    mask_tokens,
    masked_lm_loss,
    pretraining_loss_sums,
    pretraining_target_counts,
)
from bertcourse.pretrain import main, parse_args
from bertcourse.pretrain.run import build_tokenizer, load_corpus, model_from_args

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--size", "tiny", "--d-model", "32", "--d-ff", "64", "--d-hidden", "64", "--seq-len", "32"]
DATA = ["--toy-docs", "16", "--vocab-size", "300", "--eval-fraction", "0.25", "--eval-examples", "16"]


def tiny_args(model: str, out: Path, *extra: str) -> list[str]:
    return ["--model", model, "--out", str(out), "--batch-size", "8", *TINY, *DATA, "--log-every", "1", *extra]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def losses(out: Path) -> list[float]:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.fixture(scope="module")
def toy_setup():
    args = parse_args(tiny_args("bert", Path("unused")))
    train_docs, _ = split_documents(load_corpus(args), args.eval_fraction)
    tokenizer = build_tokenizer(args, train_docs)
    return args, tokenizer, tokenize_documents(train_docs, tokenizer)


def test_sum_reduction_is_mean_times_count():
    logits = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, -100, 3, 4, -100], [0, 6, -100, -100, 2]])
    total = masked_lm_loss(logits, labels, reduction="sum")
    torch.testing.assert_close(total, masked_lm_loss(logits, labels) * (labels != IGNORE_INDEX).sum())
    with pytest.raises(ValueError, match="reduction"):
        masked_lm_loss(logits, labels, reduction="none")


@pytest.mark.parametrize("model", ["elmo", "gpt", "bert"])
def test_global_batch_is_the_union_of_the_ranks_batches(toy_setup, model):
    """Splitting across 2 processes hands out the same examples, with the same masks and NSP pairs."""
    _, tokenizer, docs = toy_setup
    data = PretrainData(model, docs, tokenizer, seq_len=32, seed=3)

    def rows(batch):
        fields = [batch["input_ids"], batch["labels"], batch.get("token_type_ids", batch["input_ids"])]
        keep = batch["attention_mask"].bool()
        return sorted(tuple(tuple(f[i][keep[i]].tolist()) for f in fields) for i in range(len(keep)))

    for epoch, step in [(0, 0), (1, 1)]:
        whole = data.batch(epoch, step, 8, rank=0, world_size=1)
        halves = [data.batch(epoch, step, 8, rank=r, world_size=2) for r in range(2)]
        assert rows(whole) == sorted(rows(halves[0]) + rows(halves[1]))
        assert halves[0]["input_ids"].shape[0] == 4
    assert data.batch(0, 0, 8, 0, 1)["input_ids"].tolist() != data.batch(1, 0, 8, 0, 1)["input_ids"].tolist()


@pytest.mark.parametrize("designed", [False, True])
def test_bert_batch_rows_are_mask_tokens_on_each_example_alone(toy_setup, designed):
    """A BERT batch (made at once by ``mask_sequences``) holds, row by row, what ``mask_tokens`` makes of
    each example alone with its (seed, epoch, index) generator; with the designed recipe's options, no two
    neighbours both masked (the right one restored) and masked-LM target weights by token."""
    _, tokenizer, docs = toy_setup
    common = Counter(t for doc in docs for sentence in doc for t in sentence).most_common(1)[0][0]
    weights = {common: 10} if designed else None
    data = PretrainData("bert", docs, tokenizer, seq_len=32, seed=5, mlm_probability=0.4,
                        mask_adjacent=not designed, target_weights=weights)  # fmt: skip
    epoch = 1
    batch = data.batch(epoch, 2, 8, rank=0, world_size=1)
    order = data._order[16:24]  # the examples of batch 2
    for row, i in enumerate(order):
        ids, n_a, label = data._pair_ids(i, epoch)
        generator = torch.Generator().manual_seed(derive_seed(5, "mask", epoch, i))
        out, labels = mask_tokens(torch.tensor([ids]), vocab_size=tokenizer.vocab_size,
                                  mask_token_id=tokenizer.mask_token_id, special_token_ids=tokenizer.special_token_ids,
                                  mlm_probability=0.4, generator=generator, at_least_one=True)  # fmt: skip
        out, labels = out[0].tolist(), labels[0].tolist()
        if designed:
            for t in range(len(ids) - 1, 0, -1):  # right to left: restore t when t - 1 was masked too
                if labels[t] != IGNORE_INDEX and labels[t - 1] != IGNORE_INDEX:
                    out[t], labels[t] = ids[t], IGNORE_INDEX
        n = len(ids)
        assert batch["input_ids"][row, :n].tolist() == out and batch["labels"][row, :n].tolist() == labels
        assert batch["token_type_ids"][row, :n].tolist() == [0] * (n_a + 2) + [1] * (n - n_a - 2)
        assert batch["next_sentence_label"][row] == label and batch["attention_mask"][row].sum() == n
        if designed:
            expected = [0 if y == IGNORE_INDEX else weights.get(y, 1) for y in labels]
            assert batch["label_weights"][row, :n].tolist() == expected
    assert not designed or (batch["label_weights"] == 10).any()


@pytest.mark.parametrize("model", ["elmo", "gpt", "bert"])
def test_global_normalisation_makes_the_split_gradient_exact(toy_setup, model):
    """sum over ranks of W * local_sum / N_global, averaged as DDP does, is the full batch's gradient;
    the naive average of per-rank means is not (BERT's ranks hold different numbers of masked tokens)."""
    args, tokenizer, docs = toy_setup
    args.model, args.dropout = model, 0.0
    torch.manual_seed(0)
    net = model_from_args(args, tokenizer)
    data = PretrainData(model, docs, tokenizer, seq_len=32, seed=1)
    whole = data.batch(0, 0, 8, 0, 1)
    halves = [data.batch(0, 0, 8, r, 2) for r in range(2)]
    weights_ = PRETRAINING_TERMS[model]

    def grad(loss):
        net.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    def loss_of(batch, counts, scale):
        sums = pretraining_loss_sums(model, net, batch)
        return scale * sum(weights_[k] * sums[k] / counts[k] for k in sums)

    full = grad(loss_of(whole, pretraining_target_counts(model, whole), 1.0))
    global_counts = {k: sum(pretraining_target_counts(model, h)[k] for h in halves) for k in weights_}
    split = sum(grad(loss_of(h, global_counts, 2.0)) for h in halves) / 2
    torch.testing.assert_close(split, full, rtol=1e-4, atol=1e-6)
    if model == "bert":
        naive = sum(grad(loss_of(h, pretraining_target_counts(model, h), 1.0)) for h in halves) / 2
        assert not torch.allclose(naive, full, rtol=1e-3, atol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bert", "elmo"])
def test_two_process_torchrun_equals_one_process(tmp_path, model):
    """gloo DDP on 2 CPU processes vs 1 process, same global batch of 8, dropout 0: equal weights and losses."""
    flags = tiny_args(model, tmp_path / "two", "--steps", "4", "--dropout", "0", "--device", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    launcher += ["--master_port", str(_free_port()), "-m", "bertcourse.pretrain"]
    done = subprocess.run([*launcher, *flags], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    main(tiny_args(model, tmp_path / "one", "--steps", "4", "--dropout", "0", "--device", "cpu"))
    two, one = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert two.keys() == one.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    args = parse_args(flags)
    train_docs, _ = split_documents(load_corpus(args), args.eval_fraction)
    torch.manual_seed(derive_seed(args.seed, "init"))
    initial = model_from_args(args, build_tokenizer(args, train_docs)).state_dict()
    assert max(float((one[k] - initial[k]).abs().max()) for k in one) > 1e-3  # training moved the weights
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), abs=1e-5)


@pytest.mark.slow
def test_stop_after_then_resume_equals_uninterrupted(tmp_path):
    """With dropout on and an epoch boundary crossed (5 steps per epoch), resuming changes no bit."""
    flags = ["--steps", "8", "--dropout", "0.1", "--device", "cpu", "--toy-docs", "12"]
    main(tiny_args("bert", tmp_path / "whole", *flags))
    main(tiny_args("bert", tmp_path / "parts", *flags, "--stop-after", "5"))
    assert not (tmp_path / "parts" / "model.safetensors").exists()
    assert json.loads((tmp_path / "parts" / "checkpoint" / "state.json").read_text())["step"] == 5
    main(tiny_args("bert", tmp_path / "parts", *flags, "--resume"))
    whole, parts = weights(tmp_path / "whole"), weights(tmp_path / "parts")
    assert all(torch.equal(whole[k], parts[k]) for k in whole)
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stopped")
    flags = tiny_args("gpt", out, "--steps", "4", "--stop-after", "2", "--device", "cpu")
    main(flags)
    return out, flags


def _resume(out, flags, *changes):
    return main([*flags[: flags.index("--stop-after")], "--resume", *changes])


@pytest.mark.slow
def test_corrupted_checkpoint_is_refused(stopped_run, tmp_path):
    out, flags = stopped_run
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    weights_file = copy / "checkpoint" / "model.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte inside a tensor
    weights_file.write_bytes(bytes(data))
    flags = [str(copy) if f == str(out) else f for f in flags]
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupted"):
        _resume(copy, flags)
    (copy / "checkpoint" / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        _resume(copy, flags)


@pytest.mark.slow
def test_foreign_or_other_runs_checkpoint_is_refused(stopped_run, tmp_path):
    out, flags = stopped_run
    with pytest.raises(CheckpointError, match=r"another run \(.*lr: checkpoint 0.001, now 0.002.*seed"):
        _resume(out, flags, "--seed", "1", "--lr", "2e-3")
    with pytest.raises(CheckpointError, match="model: checkpoint 'gpt', now 'bert'"):
        _resume(out, [*flags[:1], "bert", *flags[2:]])
    foreign = tmp_path / "foreign"
    GPT(GPTConfig(vocab_size=10)).save_pretrained(foreign / "checkpoint")  # a model folder, not a run
    with pytest.raises(CheckpointError, match="not a pretrain checkpoint"):
        main(tiny_args("gpt", foreign, "--steps", "4", "--resume"))
    (foreign / "checkpoint" / "state.json").write_text(json.dumps({"format": "someone-else/3"}))
    with pytest.raises(CheckpointError, match="foreign checkpoint"):
        main(tiny_args("gpt", foreign, "--steps", "4", "--resume"))
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        main(flags)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        main(tiny_args("gpt", tmp_path / "empty", "--steps", "4", "--resume"))


@pytest.mark.slow
def test_final_weights_load_and_resumed_run_finishes(stopped_run):
    out, flags = stopped_run
    record = _resume(out, flags)
    assert record["step"] == 4 and record["tokens_per_s"] > 0 and "eval_loss" in record
    model = GPT.from_pretrained(out)
    assert model.config.d_model == 32 and model.config.max_len == 32


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--stop-after", "9"], "--stop-after must lie in"),
        (["--dropout", "1.0"], "--dropout"),
        (["--d-model", "30", "--n-heads", "4"], "divisible by --n-heads"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_bad_flags_exit_with_the_flag_named(flags, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--model", "gpt", "--out", "x", "--steps", "4", *flags])
    assert message in capsys.readouterr().err


def test_bad_corpus_and_batch_are_named(tmp_path):
    with pytest.raises(ValueError, match="--corpus 'nowhere/at/all'"):
        main(tiny_args("gpt", tmp_path, "--corpus", "nowhere/at/all"))
    with pytest.raises(ValueError, match="--batch-size 4096 exceeds"):
        main([*tiny_args("gpt", tmp_path), "--batch-size", "4096"])


def test_flops_per_token_counts_matmul_weights_and_attention():
    config = GPTConfig(vocab_size=100, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=8)
    model = GPT(config)
    embeddings = model.embeddings.word_embeddings.weight.numel() + model.embeddings.position_embeddings.weight.numel()
    n = model.num_parameters() - embeddings + 100 * 16  # the tied LM head is a matmul
    assert flops_per_token(model, 8) == 6 * n + 12 * 2 * 16 * 8
    assert mfu(1000.0, model, 8, peak=1e12) == pytest.approx(1000 * (6 * n + 12 * 2 * 16 * 8) / 1e12)


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989),  # SXM
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA A100-SXM4-80GB", 312),  # not the A10's, whose name it contains
        ("NVIDIA A10", 125),
        ("NVIDIA A40", 149.7),
        ("NVIDIA A10G", 70),
        ("NVIDIA L40S", 362),
        ("NVIDIA L40", 181),  # not the L4's
        ("NVIDIA L4", 121),
        ("Tesla T4", None),  # no bf16 tensor cores: no MFU rather than a wrong one
    ],
)
def test_peak_bf16_flops_takes_the_most_specific_name(monkeypatch, name, tflops):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    peak = peak_bf16_flops(torch.device("cuda", 0))
    assert peak == (None if tflops is None else tflops * 1e12)
    assert peak_bf16_flops(torch.device("cpu")) is None


def test_bf16_autocast_runs_on_cpu_and_a_diverging_run_names_its_step(tmp_path):
    record = main(tiny_args("gpt", tmp_path / "bf16", "--steps", "2", "--bf16", "--device", "cpu"))
    assert record["step"] == 2 and math.isfinite(record["loss"])
    with pytest.raises(NonFiniteLossError, match="at step 2"):
        main(tiny_args("gpt", tmp_path / "nan", "--steps", "3", "--lr", "1e30", "--warmup", "0", "--device", "cpu"))


@pytest.mark.gpu
def test_gpu_bf16_compile_run_reports_mfu(tmp_path):
    record = main(tiny_args("bert", tmp_path, "--steps", "20", "--bf16", "--compile", "--device", "cuda"))
    assert record["step"] == 20 and 0 < record.get("mfu", 0) < 1, record
