"""Training a WordPiece vocabulary: bottom-up merging of adjacent symbols, as in BPE and WordPiece.

``WordPieceTokenizer.train`` counts the words of a corpus (after BERT's basic tokenization) and calls
:func:`learn_wordpieces`, which spells every word in characters (``"hug" -> h ##u ##g``) and repeatedly
merges the best adjacent pair until the vocabulary is full. Counts are updated incrementally (only the
words holding the merged pair are re-spelled) and the best pair comes from a heap with lazy deletion.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

__all__ = ["CONTINUATION", "MergeRule", "learn_wordpieces"]

CONTINUATION = "##"  # prefix of a WordPiece that continues a word
MergeRule = Literal["frequency", "likelihood"]


def learn_wordpieces(
    word_counts: Mapping[str, int],
    vocab_size: int,
    min_frequency: int,
    merge_rule: MergeRule,
    special_tokens: Sequence[str],
) -> list[str]:
    """The vocabulary learnt from ``word_counts`` (word -> count, after basic tokenization): the special
    tokens, the alphabet as ``c`` and ``##c``, then merged tokens in merge order (algorithm: module docstring)."""
    chars = sorted({c for word in word_counts for c in word})
    vocab = [*special_tokens, *chars, *(CONTINUATION + c for c in chars)]
    if vocab_size < len(vocab):
        raise ValueError(
            f"vocab_size={vocab_size} cannot hold the {len(special_tokens)} special tokens and the "
            f"{len(chars)} characters of the corpus (each as c and ##c): need at least {len(vocab)}"
        )
    known = set(vocab)
    words = [[w[0], *(CONTINUATION + c for c in w[1:])] for w in word_counts]
    freqs = list(word_counts.values())

    symbol_count: Counter[str] = Counter()
    pair_count: Counter[tuple[str, str]] = Counter()
    words_with: defaultdict[tuple[str, str], set[int]] = defaultdict(set)  # may hold stale entries
    pairs_with: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)  # may hold stale entries

    def count_word(i: int, sign: int) -> None:
        """Add (sign=+1) or remove (sign=-1) the symbols and adjacent pairs of word i to the counts."""
        f = sign * freqs[i]
        symbols = words[i]
        for s in symbols:
            symbol_count[s] += f
        for pair in itertools.pairwise(symbols):
            pair_count[pair] += f
            if sign > 0:
                words_with[pair].add(i)
                pairs_with[pair[0]].add(pair)
                pairs_with[pair[1]].add(pair)
            elif pair_count[pair] == 0:
                del pair_count[pair]

    def key(pair: tuple[str, str]) -> tuple[float, int, str, str]:
        """Heap key, smallest first: the highest score, then the highest count, then alphabetical."""
        n = pair_count[pair]
        if merge_rule == "frequency":
            return (-float(n), -n, *pair)
        return (-n / (symbol_count[pair[0]] * symbol_count[pair[1]]), -n, *pair)

    heap: list[tuple[float, int, str, str]] = []

    def push(pairs: Iterable[tuple[str, str]]) -> None:
        for pair in pairs:
            if pair_count.get(pair, 0) >= min_frequency:
                heapq.heappush(heap, key(pair))

    for i in range(len(words)):
        count_word(i, +1)
    push(list(pair_count))

    while len(vocab) < vocab_size and heap:
        entry = heapq.heappop(heap)
        a, b = entry[2], entry[3]
        if pair_count.get((a, b), 0) < min_frequency or entry != key((a, b)):
            continue  # stale: the counts changed since it was pushed, and a fresh entry was pushed then
        merged = a + b.removeprefix(CONTINUATION)
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        touched: set[tuple[str, str]] = set()
        for i in words_with.pop((a, b), set()):
            old = words[i]
            new = _merge_pair(old, a, b, merged)
            if len(new) == len(old):
                continue  # a stale entry: the word no longer holds the pair
            count_word(i, -1)
            words[i] = new
            count_word(i, +1)
            touched.update(itertools.pairwise(old))
            touched.update(itertools.pairwise(new))
        # Every pair whose count changed is in `touched`; under the likelihood rule, every pair whose score
        # changed through count(a), count(b) or count(merged) holds one of them. Both get fresh heap entries.
        if merge_rule == "likelihood":
            touched |= pairs_with[a] | pairs_with[b] | pairs_with[merged]
        push(touched)
    return vocab


def _merge_pair(symbols: list[str], a: str, b: str, merged: str) -> list[str]:
    """Replace every adjacent (a, b), left to right, by ``merged``."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
