"""Clear errors everywhere: each bad input to a public entry point raises ValueError/TypeError (or the
package's CheckpointError) naming the argument, field or file, instead of a deep torch error or a
silent NaN. One test per case of issue 12's list."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bertcourse.attention import MultiHeadAttention, scaled_dot_product_attention
from bertcourse.base import CheckpointError
from bertcourse.bert import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.embeddings import Embeddings
from bertcourse.engine import train
from bertcourse.feedforward import FeedForward
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.heads import SequenceClassifier
from bertcourse.objectives import mask_tokens, token_cross_entropy
from bertcourse.pretrained import bert_from_hf, gpt_from_hf
from bertcourse.tokenizers import WordPieceTokenizer
from bertcourse.validation import positive_int

V = 23


def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=12, dropout=0.0)).eval()


def bert() -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=12)).eval()


def elmo() -> ELMo:
    torch.manual_seed(0)
    return ELMo(ELMoConfig(vocab_size=V, d_model=8, d_hidden=12, n_layers=1, dropout=0.0)).eval()


MODELS = {"gpt": gpt, "bert": bert, "elmo": elmo}
IDS = torch.tensor([[1, 2, 3], [4, 5, 6]])


# ---- scaled_dot_product_attention ------------------------------------------------------------------


def qkv(d_k: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(2, 3, d_k), torch.randn(2, 5, d_k), torch.randn(2, 5, 6)


@pytest.mark.parametrize("backend", ["math", "torch"])
def test_sdpa_head_size_zero(backend: str) -> None:
    with pytest.raises(ValueError, match="d_k >= 1"):
        scaled_dot_product_attention(*qkv(0), backend=backend)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), "0.5", True])
def test_sdpa_non_finite_or_non_number_scale(scale: object) -> None:
    with pytest.raises(ValueError, match="scale"):
        scaled_dot_product_attention(*qkv(), scale=scale)


def test_sdpa_list_mask() -> None:
    with pytest.raises(ValueError, match="attn_mask must be a boolean tensor"):
        scaled_dot_product_attention(*qkv(), attn_mask=[[True] * 5] * 3)


@pytest.mark.parametrize("p", [1.5, -0.1, float("nan"), "0.1"])
def test_sdpa_bad_dropout(p: object) -> None:
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(*qkv(), dropout_p=p)


# ---- MultiHeadAttention ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((16, 0), {}, "n_heads must be a positive integer"),
        ((16, -2), {}, "n_heads must be a positive integer"),
        ((-16, 4), {}, "d_model must be a positive integer"),
        ((16.0, 4), {}, "d_model must be an integer"),
        ((16, 4.0), {}, "n_heads must be an integer"),
        ((16, 3), {}, "divisible"),
        ((16, 4), {"dropout": 1.5}, "dropout must be a probability"),
        ((16, 4), {"backend": "flash"}, "backend must be"),
    ],
)
def test_multi_head_attention_bad_sizes(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(*args, **kwargs)


def test_multi_head_attention_dtype_mismatch_names_both_dtypes() -> None:
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 but the weights are torch.float32"):
        MultiHeadAttention(16, 4)(torch.randn(2, 3, 16, dtype=torch.float64))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: FeedForward(16, 0), "d_ff must be a positive integer"),
        (lambda: FeedForward(0, 32), "d_model must be a positive integer"),
        (lambda: FeedForward(16, 32, dropout=1.0), "dropout must be a probability"),
        (lambda: Embeddings(0, 16, 8), "vocab_size must be a positive integer"),
        (lambda: Embeddings(50, 16, 0), "max_len must be a positive integer"),
        (lambda: Embeddings(50, 16.0, 8), "d_model must be an integer"),
        (lambda: Embeddings(50, 16, 8, dropout=-0.1), "dropout must be a probability"),
    ],
)
def test_building_blocks_refuse_bad_sizes(build: object, match: str) -> None:
    """The blocks the models share check their own sizes (a FeedForward of width 0 would return its bias)."""
    with pytest.raises(ValueError, match=match):
        build()


def test_multi_head_attention_list_masks() -> None:
    mha, x = MultiHeadAttention(16, 4), torch.randn(2, 3, 16)
    with pytest.raises(ValueError, match="attention_mask must be"):
        mha(x, attention_mask=[[1, 1, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match="attn_mask must be a boolean tensor"):
        mha(x, attn_mask=[[True] * 3] * 3)


@pytest.mark.parametrize(
    "cache",
    [
        (torch.randn(2, 4, 5, 4),),  # one tensor, not a pair
        (torch.randn(2, 4, 5, 4), torch.randn(2, 4, 5)),  # a 3-D value
        (torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)),  # wrong number of heads
        (torch.randn(3, 4, 5, 4), torch.randn(3, 4, 5, 4)),  # wrong batch
        (torch.randn(2, 4, 5, 4), torch.randn(2, 4, 6, 4)),  # key and value lengths differ
        (torch.randn(2, 4, 5, 4, dtype=torch.float64), torch.randn(2, 4, 5, 4, dtype=torch.float64)),
        (torch.randn(2, 4, 5, 4).to(torch.bfloat16), torch.randn(2, 4, 5, 4)),  # key and value dtypes differ
        (torch.ones(2, 4, 5, 4, dtype=torch.int32), torch.ones(2, 4, 5, 4, dtype=torch.int32)),
        (torch.randn(2, 4, 5, 4, device="meta"), torch.randn(2, 4, 5, 4, device="meta")),  # another device
    ],
)
def test_multi_head_attention_wrong_cache(cache: tuple) -> None:
    with pytest.raises(ValueError, match="past_key_value"):
        MultiHeadAttention(16, 4)(torch.randn(2, 1, 16), past_key_value=cache)


# ---- the three models --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int8])
def test_models_refuse_small_integer_ids(name: str, dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match="input_ids must be integer token ids"):
        MODELS[name]()(IDS.to(dtype))


@pytest.mark.parametrize("name", MODELS)
def test_models_accept_int32_ids_like_int64(name: str) -> None:
    model = MODELS[name]()
    out32, out64 = model.encode(IDS.int()), model.encode(IDS)
    torch.testing.assert_close(out32, out64, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_models_refuse_empty_sequences(name: str) -> None:
    with pytest.raises(ValueError, match="at least one token"):
        MODELS[name]()(torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.tensor([[1, 1, 2], [1, 1, 1]]), "only 0"),
        (torch.tensor([[1, 1, -1], [1, 1, 1]]), "only 0"),
        (torch.tensor([[1.0, 1.0, 0.5], [1.0, 1.0, 1.0]]), "0/1 integers or booleans"),
        ([[1, 1, 1], [1, 1, 0]], "attention_mask must have the shape"),
    ],
)
def test_models_refuse_masks_other_than_0_and_1(name: str, mask: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MODELS[name]()(IDS, attention_mask=mask)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("argument", ["input_ids", "attention_mask"])
def test_models_refuse_meta_device_inputs_naming_them(name: str, argument: str) -> None:
    """A meta tensor has a shape but no values: a ValueError naming the argument, not "item() on meta"."""
    inputs = {"input_ids": IDS, "attention_mask": torch.ones_like(IDS)}
    inputs[argument] = inputs[argument].to("meta")
    with pytest.raises(ValueError, match=f"{argument} is on the meta device"):
        MODELS[name]()(**inputs)


def test_gpt_generate_refuses_a_meta_prompt() -> None:
    with pytest.raises(ValueError, match="input_ids is on the meta device"):
        gpt().generate(IDS.to("meta"), max_new_tokens=2)


def test_bert_refuses_meta_token_type_ids() -> None:
    with pytest.raises(ValueError, match="token_type_ids is on the meta device"):
        bert()(IDS, token_type_ids=torch.zeros_like(IDS, device="meta"))


def test_bert_refuses_float_token_type_ids() -> None:
    with pytest.raises(ValueError, match="token_type_ids must be integer segment ids"):
        bert()(IDS, token_type_ids=torch.zeros(2, 3))


def test_gpt_loss_for_one_token_with_labels_is_a_documented_zero_not_nan() -> None:
    model = gpt()
    ids = torch.tensor([[3], [4]])
    loss = model(ids, labels=ids).loss  # T = 1: no next token to predict
    assert torch.equal(loss, torch.tensor(0.0))


def test_all_ignored_labels_give_zero_loss_not_nan() -> None:
    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=12))
    loss = mlm(IDS, labels=torch.full_like(IDS, -100)).loss
    assert torch.equal(loss, torch.tensor(0.0))
    assert torch.equal(gpt()(IDS, labels=torch.full_like(IDS, -100)).loss, torch.tensor(0.0))


@pytest.mark.parametrize(
    ("make", "fields", "match"),
    [
        (GPTConfig, dict(vocab_size=10**6, d_model=10**5), "GPTConfig would have"),
        (BertConfig, dict(vocab_size=50, d_model=2**16, d_ff=2**20, n_layers=100), "BertConfig would have"),
        (ELMoConfig, dict(vocab_size=10**7, d_model=1024, d_hidden=4096), "ELMoConfig would have"),
    ],
)
def test_absurd_config_sizes_are_refused_before_any_allocation(make: type, fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(**fields)


@pytest.mark.parametrize(
    ("model", "config_class"), [(GPT, "GPTConfig"), (BertModel, "BertConfig"), (ELMo, "ELMoConfig")]
)
def test_a_dict_config_is_a_type_error_saying_what_to_build(model: type, config_class: str) -> None:
    with pytest.raises(TypeError, match=rf"needs a {config_class}, got dict; build one with {config_class}\(\*\*"):
        model({"vocab_size": V})


def test_bert_heads_check_their_config_too() -> None:
    with pytest.raises(TypeError, match="BertForSequenceClassification needs a BertConfig"):
        BertForSequenceClassification(GPTConfig(vocab_size=V))


# ---- checkpoints -------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    gpt().save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda p: p.write_bytes(b""), "model.safetensors is not a readable safetensors file"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "model.safetensors is not a readable safetensors file"),
        (lambda p: p.write_bytes(b"\x00" * 64 + p.read_bytes()[64:]), "model.safetensors is not a readable"),
    ],
    ids=["empty", "truncated", "corrupt"],
)
def test_damaged_safetensors_is_a_checkpoint_error_naming_the_file(saved: Path, damage, match: str) -> None:
    damage(saved / "model.safetensors")
    with pytest.raises(CheckpointError, match=match):
        GPT.from_pretrained(saved)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "config.json is not valid JSON"),
        ("", "config.json is not valid JSON"),
        ("[1, 2]", "config.json must hold a JSON object"),
        ('{"model_type": "GPT", "vocab_size": "many"}', "config.json does not describe a valid GPTConfig"),
        ('{"model_type": "GPT"}', "config.json does not describe a valid GPTConfig"),
    ],
)
def test_invalid_config_json_is_a_checkpoint_error_naming_the_file(saved: Path, text: str, match: str) -> None:
    (saved / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        GPT.from_pretrained(saved)


def test_binary_config_json_is_a_checkpoint_error(saved: Path) -> None:
    (saved / "config.json").write_bytes(bytes(range(256)))
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        GPT.from_pretrained(saved)


# ---- Hugging Face checkpoints --------------------------------------------------------------------------

try:
    import transformers
except ImportError:  # a dev dependency; the rest of this file runs without it
    transformers = None
needs_hf = pytest.mark.skipif(transformers is None, reason="needs transformers")


def hf_bert(**overrides: object):
    torch.manual_seed(0)
    fields = dict(vocab_size=V, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24)
    fields.update(max_position_embeddings=12, attn_implementation="eager", **overrides)
    return transformers.BertConfig(**fields)


@needs_hf
@pytest.mark.parametrize("key", ["vocab_size", "hidden_size", "num_hidden_layers", "max_position_embeddings"])
@needs_hf
def test_bert_from_hf_missing_config_key_is_named(tmp_path: Path, key: str) -> None:
    transformers.BertModel(hf_bert()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=rf"lacks \['{key}'\]"):
        bert_from_hf(tmp_path)


@needs_hf
def test_gpt_from_hf_missing_config_key_is_named() -> None:
    config = transformers.GPT2Config(vocab_size=V, n_embd=16, n_layer=1, n_head=2, n_positions=12).to_dict()
    del config["n_head"]
    with pytest.raises(CheckpointError, match=r"lacks \['n_head'\]"):
        gpt_from_hf({}, config=config)


@needs_hf
@pytest.mark.parametrize(
    ("index", "match"),
    [
        ("{broken", "model.safetensors.index.json is not valid JSON"),
        ('{"metadata": {}}', "must map tensor names to shard files under 'weight_map'"),
        ('{"weight_map": {"embeddings.word_embeddings.weight": 3}}', "under 'weight_map'"),
        ('{"weight_map": {"embeddings.word_embeddings.weight": "missing.safetensors"}}', "names shard 'missing"),
        ('{"weight_map": {"embeddings.word_embeddings.weight": "../x.safetensors"}}', r"names shard '\.\./x"),
    ],
)
def test_malformed_shard_index_is_a_checkpoint_error(tmp_path: Path, index: str, match: str) -> None:
    transformers.BertModel(hf_bert()).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "model.safetensors.index.json").write_text(index)
    with pytest.raises(CheckpointError, match=match):
        bert_from_hf(tmp_path)


@needs_hf
def test_hf_one_label_regression_checkpoint_loads_as_a_regression_head() -> None:
    hf = transformers.BertForSequenceClassification(hf_bert(num_labels=1)).eval()
    ours = bert_from_hf(hf)
    assert isinstance(ours, BertForSequenceClassification) and ours.config.num_labels == 1
    ids, targets = torch.tensor([[2, 5, 7, 1], [3, 3, 9, 4]]), torch.tensor([0.5, -1.25])
    with torch.no_grad():
        expected, got = hf(ids, labels=targets), ours(ids, labels=targets)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-5)  # mean squared error, as HF
    with pytest.raises(ValueError, match=r"1-label \(regression\) head must be \(2,\) floats"):
        ours(ids, labels=torch.tensor([0, 1]))


@needs_hf
def test_hf_multi_label_checkpoint_is_refused_saying_why() -> None:
    config = hf_bert(num_labels=3, problem_type="multi_label_classification")
    with pytest.raises(CheckpointError, match="multi_label_classification"):
        bert_from_hf(transformers.BertForSequenceClassification(config))


# ---- tokenizers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (bytes(range(256)), "is not a UTF-8 text vocab.txt"),
        (b"[PAD]\n\x00\x00\n", "holds NUL bytes"),
        (b"", r"is not a usable vocab.txt: .*missing \['\[PAD\]'"),
    ],
    ids=["binary", "nul-bytes", "empty"],
)
def test_from_vocab_file_on_a_binary_or_empty_file_names_the_file(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        WordPieceTokenizer.from_vocab_file(path)
    assert str(path) in str(info.value)


# ---- objectives and training ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_mask_tokens_labels_are_int64_with_minus_100_whatever_the_ids_dtype(dtype: torch.dtype) -> None:
    ids = torch.randint(5, V, (4, 50), generator=torch.Generator().manual_seed(0)).to(dtype)
    masked, labels = mask_tokens(ids, vocab_size=V, mask_token_id=4, generator=torch.Generator().manual_seed(1))
    assert labels.dtype == torch.int64 and masked.dtype == dtype
    chosen = labels != -100
    assert 0 < int(chosen.sum()) < ids.numel()  # some positions chosen, the rest are exactly -100 (not 156)
    assert torch.equal(labels[chosen], ids.long()[chosen])


def test_token_classification_losses_share_one_cross_entropy() -> None:
    logits, labels = torch.randn(2, 5, 3), torch.tensor([[0, 2, -100, 1, 1], [-100, -100, 2, 0, 1]])
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(token_cross_entropy(logits, labels), expected)
    assert torch.equal(token_cross_entropy(logits, torch.full_like(labels, -100)), torch.tensor(0.0))
    with pytest.raises(ValueError, match=r"labels must have the shape of logits without its class dim, \(2, 4\)"):
        token_cross_entropy(logits[:, :4], labels)  # 8 rows of logits against 10 labels: torch's message names neither


def tiny_loader() -> list[dict[str, torch.Tensor]]:
    return [{"input_ids": IDS, "labels": IDS}]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_steps=2.5), "max_steps must be an integer"),
        (dict(max_steps="10"), "max_steps must be an integer"),
        (dict(max_steps=0), "max_steps must be a positive integer"),
        (dict(max_steps=2, lr=float("nan")), "lr must be a finite number > 0"),
        (dict(max_steps=2, lr=float("inf")), "lr must be a finite number > 0"),
        (dict(max_steps=2, weight_decay=float("nan")), "weight_decay must be a finite number >= 0"),
        (dict(max_steps=2, max_grad_norm=float("nan")), "max_grad_norm must be a finite number > 0"),
        (dict(max_steps=2, warmup_steps=1.5), "warmup_steps must be an integer"),
        (dict(max_steps=2, eval_every=-1), "eval_every must be an integer >= 0"),
        (dict(max_steps=2, device="gpu"), "device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
        (dict(max_steps=2, device="cuda:7"), "device 'cuda:7' does not exist here"),
    ],
)
def test_train_refuses_bad_hyper_parameters_naming_them(kwargs: dict, match: str) -> None:
    if "cuda:7" in str(kwargs.get("device")) and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ValueError, match=match):
        train(gpt(), tiny_loader(), progress=False, **kwargs)


def test_train_refuses_list_batches() -> None:
    with pytest.raises(ValueError, match="batches must be dicts of tensors"):
        train(gpt(), [[IDS, IDS]], max_steps=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"batches must be dicts of tensors.*list"):  # lists of lists, not tensors
        train(gpt(), [{"input_ids": [[1, 2, 3]], "labels": [[1, 2, 3]]}], max_steps=1, device="cpu", progress=False)


class NoLoss(torch.nn.Module):
    """An encoder: its forward returns a tensor, not an output with .loss."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(V, 4)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(input_ids)


def test_train_refuses_a_model_without_loss() -> None:
    with pytest.raises(ValueError, match=r"NoLoss returned a Tensor without \.loss"):
        train(NoLoss(), [{"input_ids": IDS}], max_steps=1, device="cpu", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(hidden_size=16.0), "hidden_size must be an integer"),
        (dict(num_labels=0), "num_labels must be a positive integer"),
        (dict(dropout=float("nan")), "dropout must be a probability"),
        (dict(freeze_encoder="yes"), "freeze_encoder must be a bool"),
    ],
)
def test_task_heads_refuse_bad_sizes_naming_them(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SequenceClassifier(gpt(), **{"hidden_size": 16, "num_labels": 2, **kwargs})


def test_a_one_label_task_head_is_a_regression_like_bert() -> None:
    head = SequenceClassifier(gpt(), hidden_size=16, num_labels=1, dropout=0.0).eval()
    out = head(IDS, labels=torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(
        out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), torch.tensor([0.5, -1.0]))
    )


# ---- issue 20's list: each bad input is refused naming its argument, before any work -------------------


def test_wordpiece_trainer_refuses_a_corpus_without_words() -> None:
    for empty in ([], [""], ["   \n"]):
        with pytest.raises(ValueError, match="texts must hold at least one word"):
            WordPieceTokenizer.train(empty, vocab_size=50)


def test_mask_tokens_refuses_an_absurd_vocab_size_without_allocating() -> None:
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match=r"vocab_size must be an integer in \[1, 2\*\*31\)"):
        mask_tokens(ids, vocab_size=2**40, mask_token_id=1, special_token_ids=[0, 1])
    # a large but valid vocabulary draws its random replacements without a (V,) table: fast, and never special
    draws, _ = mask_tokens(
        torch.full((4, 512), 5), vocab_size=2**31 - 1, mask_token_id=1, special_token_ids=[0, 1, 2],
        mlm_probability=0.99, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    replaced = draws[(draws != 5) & (draws != 1)]
    assert replaced.numel() > 0 and bool((replaced > 2).all())


def test_mask_tokens_random_replacements_are_the_non_special_ids_uniformly() -> None:
    """The rank-then-skip draw is uniform over exactly the non-special ids."""
    ids = torch.full((200, 100), 4)
    masked, _ = mask_tokens(
        ids, vocab_size=8, mask_token_id=3, special_token_ids=[0, 5], mlm_probability=0.99,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    counts = torch.bincount(masked[(masked != 3) & (masked != 4)], minlength=8)
    assert counts[[0, 3, 5]].sum() == 0  # specials (and [MASK]) never drawn
    shares = counts[[1, 2, 6, 7]].float() / counts.sum()  # 4 kept as it is: its draws are invisible
    assert bool(((shares - 0.25).abs() < 0.03).all()), shares


def test_from_pretrained_refuses_a_missing_map_location_naming_it(tmp_path: Path) -> None:
    GPT(GPTConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8)).save_pretrained(tmp_path)
    if torch.cuda.device_count() > 99:
        pytest.skip("this machine has a cuda:99")
    with pytest.raises(ValueError, match="map_location 'cuda:99' does not exist here"):
        GPT.from_pretrained(tmp_path, map_location="cuda:99")
    with pytest.raises(ValueError, match="map_location must be 'cpu'"):
        GPT.from_pretrained(tmp_path, map_location="gpu")


@needs_hf
def test_bert_from_hf_refuses_an_id2label_that_is_not_a_mapping_of_label_ids() -> None:
    hf = transformers.BertForSequenceClassification(hf_bert(num_labels=2))
    for bad in ("abc", {"x": "a"}, {0: "a", 2: "b"}):
        config = hf.config.to_dict() | {"id2label": bad}
        with pytest.raises(CheckpointError, match="id2label must be a dict"):
            bert_from_hf(hf.state_dict(), config=config)


# ---- command-line counts --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["0", "-2", "1.5", "two", ""])
def test_positive_int_refuses_what_is_not_a_count(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"must be a positive integer, got {text!r}"):
        positive_int(text)


def test_positive_int_reads_a_count() -> None:
    assert positive_int("1") == 1 and positive_int("12") == 12


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--seeds", "must be a positive integer, got '0'"), ("--jobs", "must be a positive integer or 'auto', got '0'")],
)
def test_compare_refuses_a_zero_count_by_name(flag: str, message: str, tmp_path: Path, capsys) -> None:
    from bertcourse import compare

    with pytest.raises(SystemExit):  # before any run starts
        compare.main(["--preset", "tiny", "--out", str(tmp_path), flag, "0"])
    assert f"argument {flag}: {message}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# ---- devices --------------------------------------------------------------------------------------------
def _missing_devices() -> list[str]:
    """Device names this machine lacks: a type torch does not know, and CUDA or MPS where absent."""
    missing = ["tpu"]
    if not torch.cuda.is_available():
        missing.append("cuda")
    if not torch.backends.mps.is_available():
        missing.append("mps")
    return missing


@pytest.mark.parametrize("device", _missing_devices())
def test_a_device_this_machine_lacks_is_refused_by_name_before_any_work(
    device: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bertcourse import compare
    from bertcourse.device import get_device
    from bertcourse.engine import setup
    from bertcourse.pretrain import parse_args

    with pytest.raises(ValueError, match=f"prefer .*{device}"):
        get_device(device)
    with pytest.raises(ValueError, match=f"device .*{device}"):
        setup(device)
    with pytest.raises(ValueError, match=f"device .*{device}"):
        compare.run("tiny", 1, tmp_path / "run", device=device)
    expected = f"--device {device!r} does not exist here"
    if device == "tpu":
        expected = "--device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'"
    for command in (
        lambda: parse_args(["--model", "gpt", "--out", str(tmp_path / "pretrain"), "--device", device]),
        lambda: compare.main(["--preset", "tiny", "--out", str(tmp_path / "compare"), "--device", device]),
    ):
        with pytest.raises(SystemExit):
            command()
        assert expected in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no output folder was made
