"""Tokenizers: characters for the first toy models, BERT's WordPiece for everything after.

Both share one interface (the Hugging Face one learners meet next):

- ``tokenize(text) -> list[str]``; special-token strings in the text (``"[MASK]"``) stay whole;
- ``encode(text, text_pair=None) -> list[int]``: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``;
- ``decode(ids) -> str``;
- ``tokenizer(texts, text_pair=None, ...)`` -> ``{"input_ids", "attention_mask", "token_type_ids"}``, each a
  (B, T) int64 tensor, right-padded with ``[PAD]``; ``attention_mask`` is 1 for tokens and 0 for padding,
  ``token_type_ids`` is 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``.

WordPiece (Schuster & Nakajima 2012; Wu et al. 2016; BERT, Devlin et al. 2019) runs in two stages, as in BERT's
``tokenization.py``: a *basic* tokenizer cleans the text and splits it into words and punctuation marks, then
every word is cut into the longest vocabulary pieces, greedily from the left, with ``##`` marking a piece that
continues a word: ``"unaffable" -> ["una", "##ffa", "##ble"]``.
"""

from __future__ import annotations

import abc
import numbers
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import torch

from bertcourse.minilm import minilm_path, minilm_vocab_path  # re-exported: they lived here
from bertcourse.wordpiece_trainer import CONTINUATION, MergeRule, learn_wordpieces

__all__ = [
    "SPECIAL_TOKENS",
    "CharTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "minilm_path",
    "minilm_vocab_path",
]

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, SEP, MASK)
_CACHE_SIZE = 1 << 17  # words remembered by WordPieceTokenizer before the cache starts afresh

Padding = bool | Literal["longest", "max_length"]
BatchEncoding = dict[str, torch.Tensor] | dict[str, list[list[int]]]


class Tokenizer(abc.ABC):
    """A vocabulary with the five BERT special tokens, and the framing, truncation and padding around it.

    Subclasses say how text becomes tokens (``_split``) and how tokens become text again (``_join``).

    Args:
        tokens: the vocabulary, token ``i`` having id ``i``; must hold every token of ``SPECIAL_TOKENS``.
        model_max_length: the longest sequence a model takes; ``__call__`` truncates to it when no
            ``max_length`` is given. ``None``: no limit.
    """

    def __init__(self, tokens: Sequence[str], model_max_length: int | None = None) -> None:
        tokens = list(tokens)
        if len(set(tokens)) != len(tokens):
            repeated = sorted(t for t, n in Counter(tokens).items() if n > 1)[:5]
            raise ValueError(f"tokens must be unique, got repeats such as {repeated}")
        missing = [t for t in SPECIAL_TOKENS if t not in set(tokens)]
        if missing:
            raise ValueError(f"tokens must contain the special tokens {list(SPECIAL_TOKENS)}, missing {missing}")
        if model_max_length is not None and model_max_length < 1:
            raise ValueError(f"model_max_length must be a positive int or None, got {model_max_length}")
        self.model_max_length = model_max_length
        self._id_to_token = tokens
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self._special_pattern = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")

    # ----- vocabulary ---------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of tokens, the size of a model's embedding table."""
        return len(self._id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def pad_token_id(self) -> int:
        return self.vocab[PAD]

    @property
    def unk_token_id(self) -> int:
        return self.vocab[UNK]

    @property
    def cls_token_id(self) -> int:
        return self.vocab[CLS]

    @property
    def sep_token_id(self) -> int:
        return self.vocab[SEP]

    @property
    def mask_token_id(self) -> int:
        return self.vocab[MASK]

    @property
    def special_token_ids(self) -> list[int]:
        """Ids of [PAD] [UNK] [CLS] [SEP] [MASK], in that order: tokens a masked LM never masks."""
        return [self.vocab[t] for t in SPECIAL_TOKENS]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Token(s) to id(s); a token outside the vocabulary becomes ``unk_token_id``."""
        unk = self.unk_token_id
        if isinstance(tokens, str):
            return self.vocab.get(tokens, unk)
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int] | torch.Tensor) -> str | list[str]:
        """Id(s) to token(s); raises ``ValueError`` for an id outside [0, vocab_size)."""
        single = isinstance(ids, numbers.Integral) or (isinstance(ids, torch.Tensor) and ids.dim() == 0)
        flat = [int(ids)] if single else _id_list(ids, "ids")
        bad = [i for i in flat if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids must lie in [0, vocab_size={self.vocab_size}), got {bad[:5]}")
        tokens = [self._id_to_token[i] for i in flat]
        return tokens[0] if single else tokens

    # ----- text <-> tokens ----------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into tokens; special-token strings in it, such as ``"[MASK]"``, stay single tokens."""
        _check_text(text, "text")
        tokens: list[str] = []
        for i, chunk in enumerate(self._special_pattern.split(text)):
            if i % 2:  # re.split puts the captured separators, the special tokens, at odd positions
                tokens.append(chunk)
            elif chunk:
                tokens.extend(self._split(chunk))
        return tokens

    @abc.abstractmethod
    def _split(self, text: str) -> list[str]:
        """Text without special tokens -> tokens."""

    @abc.abstractmethod
    def _join(self, tokens: list[str]) -> str:
        """Tokens -> text."""

    def _ids(self, text: object, name: str) -> list[int]:
        """Token ids of one text, without special tokens; ``name`` is the argument named in errors."""
        _check_text(text, name)
        return self.convert_tokens_to_ids(self.tokenize(text))

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``[CLS] text [SEP]`` or ``[CLS] text [SEP] text_pair [SEP]`` (no specials if asked)."""
        ids_a = self._ids(text, "text")
        ids_b = None if text_pair is None else self._ids(text_pair, "text_pair")
        return self._frame(ids_a, ids_b, add_special_tokens)[0]

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Token ids (a list or a 1-D tensor) back to text; special tokens are dropped unless asked for."""
        tokens = self.convert_ids_to_tokens(_id_list(ids, "ids"))
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
        return self._join(tokens)

    # ----- batches ------------------------------------------------------------------------------------------
    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """2 for ``[CLS] A [SEP]``, 3 for ``[CLS] A [SEP] B [SEP]``."""
        return 3 if pair else 2

    def _frame(
        self, ids_a: list[int], ids_b: list[int] | None, add_special_tokens: bool
    ) -> tuple[list[int], list[int]]:
        """(input_ids, token_type_ids) of one example: segment A, [SEP] included, has type 0; segment B type 1."""
        cls, sep = ([self.cls_token_id], [self.sep_token_id]) if add_special_tokens else ([], [])
        first = cls + ids_a + sep
        second = [] if ids_b is None else ids_b + sep
        return first + second, [0] * len(first) + [1] * len(second)

    def __call__(
        self,
        texts: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        padding: Padding = True,
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: Literal["pt"] | None = "pt",
        add_special_tokens: bool = True,
    ) -> BatchEncoding:
        """Encode a batch: ``input_ids``, ``attention_mask`` and ``token_type_ids``, each (B, T).

        Args:
            texts: one text or a list of B texts.
            text_pair: optional second segments, one per text (sentence pairs, as in NSP or question answering).
            padding: ``True``/``"longest"`` right-pads to the longest example, ``"max_length"`` to ``max_length``,
                ``False`` not at all.
            truncation: cut examples to ``max_length`` (default ``model_max_length``); pairs lose tokens from the
                end of the longer segment, one at a time, the second one on ties (BERT's ``_truncate_seq_pair``).
            max_length: the length limit, special tokens included.
            return_tensors: ``"pt"`` for int64 tensors, ``None`` for lists of lists.
            add_special_tokens: frame each example with ``[CLS]`` and ``[SEP]``.
        """
        batch_a = _as_batch(texts, "texts")
        batch_b = None if text_pair is None else _as_batch(text_pair, "text_pair")
        if batch_b is not None and len(batch_b) != len(batch_a):
            raise ValueError(f"text_pair must have one text per text: got {len(batch_b)} for {len(batch_a)} texts")
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        if padding not in (True, False, "longest", "max_length"):
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        n_special = self.num_special_tokens_to_add(batch_b is not None) if add_special_tokens else 0
        if max_length is not None and (not isinstance(max_length, int) or max_length <= n_special):
            raise ValueError(f"max_length must be an int > {n_special} (the special tokens added), got {max_length!r}")
        limit = max_length if max_length is not None else self.model_max_length
        if padding == "max_length" and limit is None:
            raise ValueError("padding='max_length' needs max_length (this tokenizer has no model_max_length)")

        input_ids, token_type_ids = [], []
        for i, text in enumerate(batch_a):
            ids_a = self._ids(text, f"texts[{i}]")
            ids_b = None if batch_b is None else self._ids(batch_b[i], f"text_pair[{i}]")
            if truncation and limit is not None:
                ids_a, ids_b = _truncate_longest_first(ids_a, ids_b, limit - n_special)
            ids, types = self._frame(ids_a, ids_b, add_special_tokens)
            input_ids.append(ids)
            token_type_ids.append(types)
        attention_mask = [[1] * len(ids) for ids in input_ids]

        if padding:
            width = limit if padding == "max_length" else max(len(ids) for ids in input_ids)
            for row_ids, row_mask, row_types in zip(input_ids, attention_mask, token_type_ids, strict=True):
                n_pad = max(width - len(row_ids), 0)
                row_ids.extend([self.pad_token_id] * n_pad)
                row_mask.extend([0] * n_pad)
                row_types.extend([0] * n_pad)
        out = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if return_tensors is None:
            return out
        if len({len(ids) for ids in input_ids}) > 1:
            raise ValueError(
                f"return_tensors='pt' needs rows of equal length, got {sorted({len(ids) for ids in input_ids})} "
                f"with padding={padding!r}, truncation={truncation}"
            )
        return {name: torch.tensor(rows, dtype=torch.long) for name, rows in out.items()}


class CharTokenizer(Tokenizer):
    """One token per character, after the five special tokens: the tokenizer of the first toy models.

    Characters outside the alphabet become ``[UNK]``; ``decode(encode(text)) == text`` for text over the alphabet.

    Args:
        alphabet: the characters (a string or an iterable of one-character strings); stored sorted.
        model_max_length: see ``Tokenizer``.
    """

    def __init__(self, alphabet: Iterable[str], model_max_length: int | None = None) -> None:
        chars = sorted(set(alphabet))
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad or not chars:
            raise ValueError(f"alphabet must be a non-empty iterable of single characters, got {bad[:5] or chars}")
        super().__init__([*SPECIAL_TOKENS, *chars], model_max_length)

    @classmethod
    def from_texts(cls, texts: str | Iterable[str], model_max_length: int | None = None) -> CharTokenizer:
        """The alphabet of every character that occurs in ``texts``."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        for i, text in enumerate(batch):
            _check_text(text, f"texts[{i}]")
        return cls("".join(batch), model_max_length)

    def _split(self, text: str) -> list[str]:
        return list(text)

    def _join(self, tokens: list[str]) -> str:
        return "".join(tokens)


class WordPieceTokenizer(Tokenizer):
    """BERT's tokenizer: basic tokenization, then greedy longest-match-first WordPiece.

    Basic tokenization (BERT's ``BasicTokenizer``), in order:

    1. drop NUL, U+FFFD and control characters (Unicode category C*, except tab, newline, carriage return);
       turn every whitespace character (those three, and category Zs) into a space;
    2. put spaces around CJK ideographs, so each becomes a word of its own;
    3. NFC-normalise, split on whitespace; then per word: lower-case, strip accents (NFD, drop the
       non-spacing marks, category Mn) and split off every punctuation character (ASCII non-alphanumeric
       printables, and Unicode category P*) as a word of its own.

    WordPiece then cuts each word, left to right, into the longest piece in the vocabulary; pieces after the
    first carry ``##``. A word longer than ``max_input_chars_per_word``, or one the vocabulary cannot cover,
    becomes a single ``[UNK]``. Word -> pieces results are cached, so encoding a corpus pays for each distinct
    word once.

    Args:
        tokens: the vocabulary, token ``i`` having id ``i`` (a BERT ``vocab.txt``: see ``from_vocab_file``).
        do_lower_case: lower-case words (the "uncased" models).
        strip_accents: strip accents; ``None`` means "when lower-casing", as in the original BERT.
        tokenize_chinese_chars: make every CJK ideograph a word of its own.
        max_input_chars_per_word: longer words become ``[UNK]`` (100 in BERT).
        model_max_length: see ``Tokenizer``; 512, BERT's number of positions.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        max_input_chars_per_word: int = 100,
        model_max_length: int | None = 512,
    ) -> None:
        super().__init__(tokens, model_max_length)
        if max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be positive, got {max_input_chars_per_word}")
        self.do_lower_case = do_lower_case
        self.strip_accents = do_lower_case if strip_accents is None else strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        # No piece is longer than the longest token, which bounds the longest-match search.
        self._longest_piece = max(len(t.removeprefix(CONTINUATION)) for t in self.vocab)
        self._cache: dict[str, list[str]] = {}

    # ----- basic tokenization -------------------------------------------------------------------------------
    def _pretokenize(self, text: str) -> list[str]:
        """Steps 1-2 and the whitespace split of step 3: the raw words, before lower-casing and punctuation."""
        text = _clean_text(text)
        if self.tokenize_chinese_chars:
            text = _CJK_IDEOGRAPH.sub(r" \g<0> ", text)
        return unicodedata.normalize("NFC", text).split()

    def _normalize_word(self, word: str) -> list[str]:
        """Step 3 on one whitespace-free word: lower-case, strip accents, split off punctuation."""
        if self.do_lower_case:
            word = word.lower()
        if self.strip_accents:
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
        return _split_on_punctuation(word)

    def basic_tokenize(self, text: str) -> list[str]:
        """The words and punctuation marks of ``text`` that WordPiece then cuts into pieces.

        ``" ".join(basic_tokenize(text))`` is the *normalised* text, which ``decode(encode(text))`` gives back
        when no word became ``[UNK]``.
        """
        _check_text(text, "text")
        return [w for raw in self._pretokenize(text) for w in self._normalize_word(raw)]

    # ----- WordPiece ----------------------------------------------------------------------------------------
    def wordpiece(self, word: str) -> list[str]:
        """Greedy longest-match-first: ``"unaffable" -> ["una", "##ffa", "##ble"]``, or ``["[UNK]"]``."""
        if len(word) > self.max_input_chars_per_word:
            return [UNK]
        pieces, start = [], 0
        while start < len(word):
            for end in range(min(len(word), start + self._longest_piece), start, -1):
                piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
                if piece in self.vocab:
                    break
            else:  # not even one character matched: the word cannot be covered
                return [UNK]
            pieces.append(piece)
            start = end
        return pieces

    def _split(self, text: str) -> list[str]:
        pieces: list[str] = []
        for raw in self._pretokenize(text):
            cached = self._cache.get(raw)
            if cached is None:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                cached = [p for w in self._normalize_word(raw) for p in self.wordpiece(w)]
                self._cache[raw] = cached
            pieces.extend(cached)
        return pieces

    def _join(self, tokens: list[str]) -> str:
        return " ".join(tokens).replace(" " + CONTINUATION, "")

    # ----- vocabulary files ---------------------------------------------------------------------------------
    @classmethod
    def from_vocab_file(cls, path: str | Path, **kwargs: object) -> WordPieceTokenizer:
        """Load a BERT ``vocab.txt`` (one token per line, line ``i`` is id ``i``); ``kwargs`` go to ``__init__``."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path must be a vocab.txt file, got {str(path)!r}, which does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{path} is not a UTF-8 text vocab.txt (byte {err.start} is not UTF-8): a binary file?"
            ) from None
        if "\x00" in text:
            raise ValueError(f"{path} holds NUL bytes: a binary file, not a vocab.txt with one token per line")
        tokens = text.split("\n")
        if tokens and tokens[-1] == "":  # the newline that ends the last line
            tokens.pop()
        try:
            return cls(tokens, **kwargs)
        except ValueError as err:
            raise ValueError(f"{path} is not a usable vocab.txt: {err}") from None

    def save_vocab(self, path: str | Path) -> Path:
        """Write the vocabulary as a BERT ``vocab.txt``: one token per line, in id order. Returns the path."""
        path = Path(path)
        path.write_text("".join(t + "\n" for t in self._id_to_token), encoding="utf-8")
        return path

    # ----- training -----------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        min_frequency: int = 2,
        merge_rule: MergeRule = "frequency",
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        max_input_chars_per_word: int = 100,
        model_max_length: int | None = 512,
    ) -> WordPieceTokenizer:
        """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens from ``texts``.

        Training is bottom-up merging, as in BPE (Sennrich et al. 2016) and WordPiece (Schuster & Nakajima 2012):

        1. Count the words of the corpus after basic tokenization (``basic_tokenize``), leaving out words longer
           than ``max_input_chars_per_word``, which become ``[UNK]`` whatever the vocabulary.
        2. Spell every word in characters, ``##`` marking the non-initial ones: ``"hug" -> h ##u ##g``.
           The vocabulary starts as the special tokens, then every character ``c`` seen, both as ``c`` and
           ``##c`` (sorted), so any word over this alphabet can be tokenized without ``[UNK]``.
        3. Repeatedly merge the adjacent pair (a, b), occurring at least ``min_frequency`` times, with the
           highest score; the new token is ``a`` followed by ``b`` without its ``##``. Counts are weighted by
           word frequency. ``merge_rule`` picks the score:

           - ``"frequency"``: score(a, b) = count(ab), BPE's rule, and what the Hugging Face ``tokenizers``
             WordPieceTrainer does. Frequent words end up as single tokens.
           - ``"likelihood"``: score(a, b) = count(ab) / (count(a) * count(b)), the WordPiece rule as the
             Hugging Face course describes it: the pair whose parts most rarely occur apart. It prefers rare
             parts, so on a small corpus it spends the vocabulary on rare words and leaves frequent ones in
             pieces (on CPython's ``pydoc_data.topics`` text with 2000 tokens, "the" stays ``th ##e``).

           Ties go to the more frequent pair, then to the alphabetically first, so training is deterministic.
        4. Stop at ``vocab_size`` tokens, or when no pair occurs ``min_frequency`` times.

        The merge loop is :func:`bertcourse.wordpiece_trainer.learn_wordpieces`: a 2000-token vocabulary from
        1 MB of text trains in about a second on a CPU. Tokenization then uses greedy longest-match, not the
        merge order, as BERT does.

        Raises:
            ValueError: ``vocab_size`` cannot hold the special tokens and the alphabet, or bad ``texts``.
        """
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        if merge_rule not in ("frequency", "likelihood"):
            raise ValueError(f"merge_rule must be 'frequency' or 'likelihood', got {merge_rule!r}")
        settings = {
            "do_lower_case": do_lower_case,
            "strip_accents": strip_accents,
            "tokenize_chinese_chars": tokenize_chinese_chars,
            "max_input_chars_per_word": max_input_chars_per_word,
            "model_max_length": model_max_length,
        }
        basic = cls(SPECIAL_TOKENS, **settings)  # no pieces yet: used for its basic tokenization only
        batch = [texts] if isinstance(texts, str) else list(texts)
        raw_counts: Counter[str] = Counter()
        for i, text in enumerate(batch):
            _check_text(text, f"texts[{i}]")
            raw_counts.update(basic._pretokenize(text))
        word_counts: Counter[str] = Counter()
        for raw, n in raw_counts.items():
            for word in basic._normalize_word(raw):
                if len(word) <= max_input_chars_per_word:  # longer words become [UNK] whatever the vocabulary
                    word_counts[word] += n
        if not word_counts:
            raise ValueError(
                f"texts must hold at least one word to learn a vocabulary from, got {len(batch)} text(s) with none "
                "(an empty corpus would give a vocabulary of the special tokens alone)"
            )
        return cls(learn_wordpieces(word_counts, vocab_size, min_frequency, merge_rule, SPECIAL_TOKENS), **settings)


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    """ASCII non-alphanumeric printables (so ``$ + < = > ^ ` | ~`` too) and Unicode punctuation (P*)."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


# str.translate table for the common all-ASCII case of _clean_text: control characters go, whitespace -> " ".
_ASCII_CLEAN = {
    cp: (" " if _is_whitespace(chr(cp)) else None)
    for cp in range(128)
    if _is_whitespace(chr(cp)) or _is_control(chr(cp))
}

# CJK Unified Ideographs and their extensions, and the compatibility ideographs (BERT's list). Hangul, kana and
# other scripts that separate words by spaces are not in it.
_CJK_IDEOGRAPH = re.compile(
    "[\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f"
    "\U0002b740-\U0002b81f\U0002b820-\U0002ceaf\uf900-\ufaff\U0002f800-\U0002fa1f]"
)


def _clean_text(text: str) -> str:
    """Drop NUL, U+FFFD and control characters; turn every whitespace character into a space."""
    if text.isascii():
        return text.translate(_ASCII_CLEAN)
    return "".join(" " if _is_whitespace(c) else c for c in text if c != "\ufffd" and not _is_control(c))


def _split_on_punctuation(word: str) -> list[str]:
    """``"don't!" -> ["don", "'", "t", "!"]``: every punctuation character becomes a word of its own."""
    out: list[str] = []
    start = 0
    for i, char in enumerate(word):
        if _is_punctuation(char):
            if i > start:
                out.append(word[start:i])
            out.append(char)
            start = i + 1
    if start < len(word):
        out.append(word[start:])
    return out


def _truncate_longest_first(
    ids_a: list[int], ids_b: list[int] | None, budget: int
) -> tuple[list[int], list[int] | None]:
    """Keep at most ``budget`` tokens in all, dropping from the end of the longer segment, B on ties."""
    if ids_b is None:
        return ids_a[:budget], None
    n_a, n_b = len(ids_a), len(ids_b)
    while n_a + n_b > budget:
        if n_a > n_b:
            n_a -= 1
        else:
            n_b -= 1
    return ids_a[:n_a], ids_b[:n_b]


def _check_text(text: object, name: str) -> None:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a str, got {type(text).__name__}")


def _as_batch(texts: object, name: str) -> list[str]:
    """A str or a non-empty list/tuple of str -> list of str."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)) or not texts:
        raise ValueError(f"{name} must be a str or a non-empty list of str, got {type(texts).__name__} {texts!r:.60}")
    for i, text in enumerate(texts):
        _check_text(text, f"{name}[{i}]")
    return list(texts)


def _id_list(ids: object, name: str) -> list[int]:
    """A sequence of integers (Python, NumPy) or a 1-D integer tensor -> list of int."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.is_floating_point():
            raise ValueError(f"{name} must be a 1-D integer tensor, got shape {tuple(ids.shape)} dtype {ids.dtype}")
        return ids.tolist()
    try:
        return [operator.index(i) for i in ids]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of int or a 1-D tensor, got {ids!r:.60}") from None
