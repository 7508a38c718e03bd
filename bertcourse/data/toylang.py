"""A seeded, English-like toy language whose every label is right by construction.

The language is small (a few hundred words) but holds the phenomena the course compares the
models on, each with its deciding cue in a known place relative to the word it decides:

* agreement: "the dogs that the cat sees run ." -- the subject noun decides "run"/"runs":
  ``left`` when adjacent, ``far`` across a relative clause;
* article: "an old owl" / "a big owl" -- the next word decides "a"/"an": ``right``;
* part of speech, left cue: "the watch" (NOUN) / "the cats watch" (VERB): the previous word;
* part of speech, right cue: "the orange cat" (ADJ) / "the orange rolls" (NOUN): the next word;
* negation: "the film is not good ." -- "not" flips the sentiment: ``left`` (``far`` with
  intensifiers between, "not really very good");
* coordination (off by default, ``p_coordination``): "the film is good and nice ." / "the film is good
  but dull ." -- "and" joins adjectives of one polarity, "but" of opposite ones, so the conjunction is
  fixed by the words on *both* sides jointly (``both``): either side alone says nothing about it.

Cues at distance >= ``FAR`` (3 words) are tagged ``far``. Grammar rules that make the labels exact:

* a noun/verb word (``watch``, ``fly``, ...) is a NOUN iff the previous word is a DET or ADJ;
* an adjective/noun word (``orange``, ``iron``, ...) is an ADJ iff the next word is a NOUN;
* the two kinds are never adjacent, so no reading depends on a second ambiguous word;
* "a" precedes consonant-initial words, "an" vowel-initial ones (the lexicon has no "hour"/"unit");
* a relative clause holds a noun of the *other* number (an attractor), so the noun nearest to the
  main verb never decides its form: only the subject does;
* attributive adjectives are neutral, so a sentence's sentiment is its predicate adjective's polarity,
  flipped by "not".

Words are separated by single spaces, punctuation included (``"... run ."``), so ``text.split()``
gives exactly the words that ``tags`` label.

Knobs for experiments at a small budget (chapter 08), all off by default so the default outputs never
change: ``lexicon`` keeps a few words per class (each pair of words then co-occurs more often),
``p_indefinite`` makes "a"/"an" frequent, ``p_coordination`` adds the ``both``-sides cue, and
:meth:`ToyLanguage.cloze_task` builds fill-in-the-blank items whose deciding cue is ``left``,
``right``, ``far`` or ``both``, with balanced answers.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from typing import Literal

from bertcourse.objectives import next_sentence_pairs

__all__ = [
    "CLOZE_CUES",
    "FAR",
    "POS_TAGS",
    "ClozeItem",
    "Cue",
    "Document",
    "Sentence",
    "TaskItem",
    "ToyLanguage",
]

CuePosition = Literal["left", "right", "far", "both", "none"]
ClozeCue = Literal["left", "right", "far", "both"]
SG, PL = 0, 1
FAR = 3
"""A cue this many words or more from the word it decides is tagged ``far``."""

POS_TAGS: tuple[str, ...] = ("DET", "ADJ", "NOUN", "VERB", "AUX", "PART", "ADV", "PRON", "PUNCT")
"""Universal-Dependencies tag names; a POS label is an index into this tuple."""
CCONJ = "CCONJ"
"""The tag of "and"/"but", which only a language with ``p_coordination > 0`` uses: its
``ToyLanguage.pos_tags`` is ``POS_TAGS + ("CCONJ",)``."""
CLOZE_CUES: tuple[ClozeCue, ...] = ("left", "right", "far", "both")
"""The cue positions of :meth:`ToyLanguage.cloze_task`, in the order the course reports them."""

NOUNS: dict[str, tuple[tuple[str, str], ...]] = {
    "animals": (
        ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("owl", "owls"), ("eagle", "eagles"),
        ("horse", "horses"), ("ant", "ants"), ("elephant", "elephants"), ("fox", "foxes"), ("mouse", "mice"),
        ("otter", "otters"), ("rabbit", "rabbits"), ("wolf", "wolves"), ("insect", "insects"),
        ("fly", "flies"), ("duck", "ducks"),
    ),
    "people": (
        ("teacher", "teachers"), ("child", "children"), ("farmer", "farmers"), ("artist", "artists"),
        ("engineer", "engineers"), ("officer", "officers"), ("uncle", "uncles"), ("aunt", "aunts"),
        ("doctor", "doctors"), ("student", "students"), ("actor", "actors"), ("editor", "editors"),
        ("pilot", "pilots"), ("nurse", "nurses"), ("watch", "watches"), ("walk", "walks"),
    ),
    "food": (
        ("apple", "apples"), ("egg", "eggs"), ("onion", "onions"), ("olive", "olives"), ("cake", "cakes"),
        ("pie", "pies"), ("lemon", "lemons"), ("cookie", "cookies"), ("banana", "bananas"),
        ("apricot", "apricots"), ("sandwich", "sandwiches"), ("avocado", "avocados"), ("pear", "pears"),
        ("soup", "soups"), ("drink", "drinks"),
    ),
    "media": (
        ("film", "films"), ("movie", "movies"), ("book", "books"), ("album", "albums"), ("song", "songs"),
        ("novel", "novels"), ("opera", "operas"), ("episode", "episodes"), ("show", "shows"),
        ("story", "stories"), ("essay", "essays"), ("article", "articles"), ("poem", "poems"),
        ("game", "games"), ("play", "plays"),
    ),
    "places": (
        ("city", "cities"), ("island", "islands"), ("house", "houses"), ("garden", "gardens"),
        ("office", "offices"), ("airport", "airports"), ("village", "villages"), ("hotel", "hotels"),
        ("museum", "museums"), ("inn", "inns"), ("market", "markets"), ("road", "roads"),
        ("beach", "beaches"), ("area", "areas"), ("park", "parks"), ("train", "trains"),
    ),
}  # fmt: skip
TOPICS: tuple[str, ...] = tuple(NOUNS)

# (plural/base form, singular/3rd-person form)
INTRANSITIVE: tuple[tuple[str, str], ...] = (
    ("run", "runs"), ("roll", "rolls"), ("sleep", "sleeps"),
    ("wait", "waits"), ("arrive", "arrives"), ("appear", "appears"), ("rest", "rests"),
    ("return", "returns"), ("smile", "smiles"), ("move", "moves"), ("stay", "stays"), ("fall", "falls"),
    ("fly", "flies"), ("duck", "ducks"), ("walk", "walks"), ("train", "trains"), ("park", "parks"),
)  # fmt: skip
TRANSITIVE: tuple[tuple[str, str], ...] = (
    ("see", "sees"), ("like", "likes"), ("follow", "follows"), ("chase", "chases"), ("find", "finds"),
    ("know", "knows"), ("visit", "visits"), ("admire", "admires"), ("remember", "remembers"),
    ("describe", "describes"), ("ignore", "ignores"), ("help", "helps"), ("notice", "notices"),
    ("watch", "watches"), ("drink", "drinks"), ("play", "plays"),
)  # fmt: skip
NOUN_VERB: frozenset[str] = frozenset(
    w for pair in ("fly flies", "duck ducks", "watch watches", "walk walks", "drink drinks", "play plays",
                   "park parks", "train trains") for w in pair.split()
)  # fmt: skip
"""Words that are a NOUN after a DET or ADJ and a VERB elsewhere (cue: the previous word)."""
ADJ_NOUN: tuple[str, ...] = ("orange", "iron", "silver", "gold", "glass", "stone", "paper", "plastic")
"""Words that are an ADJ before a NOUN and a (singular) NOUN elsewhere (cue: the next word)."""

POSITIVE: tuple[str, ...] = (
    "good", "great", "wonderful", "lovely", "excellent", "amazing", "nice", "brilliant", "delightful",
    "elegant", "pleasant", "charming", "awesome", "superb",
)  # fmt: skip
NEGATIVE: tuple[str, ...] = (
    "bad", "terrible", "awful", "boring", "ugly", "horrible", "dull", "annoying", "poor", "nasty",
    "unpleasant", "weak", "mediocre", "dreadful",
)  # fmt: skip
NEUTRAL: tuple[str, ...] = (
    "big", "small", "old", "young", "tall", "new", "quiet", "red", "blue", "green", "ancient", "empty",
    "huge", "tiny", "heavy", "ordinary", "little", "early", "enormous", "idle",
)  # fmt: skip
INTENSIFIERS: tuple[str, ...] = ("very", "really", "truly", "quite")
P_NEGATION = 0.3
"""Share of copula sentences with "not": a minority, as in real reviews, so a word's polarity is
informative on its own (at 0.5 the sentiment would be a pure XOR of polarity and negation)."""
SG_DETS: tuple[str, ...] = ("the", "the", "a", "this")
PL_DETS: tuple[str, ...] = ("the", "the", "some", "these")
VOWELS = frozenset("aeiou")

_FLIP_NUMBER: dict[str, str] = {"is": "are", "are": "is"}
_FLIP_NUMBER.update({base: third for base, third in INTRANSITIVE + TRANSITIVE})
_FLIP_NUMBER.update({third: base for base, third in INTRANSITIVE + TRANSITIVE})


@dataclass(frozen=True)
class Cue:
    """Where the word that decides ``target``'s label sits: ``cue_index``, tagged ``position``.

    A ``both`` cue (coordination) has two deciding words, ``target - 1`` (``cue_index``) and ``target + 1``.
    """

    phenomenon: Literal["agreement", "article", "pos", "negation", "coordination"]
    target: int
    cue_index: int
    position: CuePosition


@dataclass(frozen=True)
class Sentence:
    """One generated sentence and its labels.

    ``tags[i]`` is the POS tag of ``words[i]``; ``sentiment`` is 1 (positive), 0 (negative) or None
    (no predicate adjective); ``acceptable`` is False once an agreement or article error is injected.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    topic: str
    sentiment: int | None
    acceptable: bool
    cues: tuple[Cue, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def cue(self, phenomenon: str) -> Cue | None:
        """The first cue of ``phenomenon`` in this sentence, or None."""
        return next((c for c in self.cues if c.phenomenon == phenomenon), None)


@dataclass(frozen=True)
class Document:
    """Sentences about one topic, most with the same subject noun: their order is learnable (NSP)."""

    topic: str
    subject: str
    sentences: tuple[Sentence, ...]

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sentences]


@dataclass(frozen=True)
class TaskItem:
    """One labelled example of a task.

    ``label`` is a class id, or for ``pos_task`` one tag id per word (indices into ``POS_TAGS``).
    ``cue`` says where the deciding cue sits relative to ``target`` (a word index): ``left``,
    ``right``, ``far``, or ``none`` when one word decides the label on its own.
    """

    text: str
    label: int | tuple[int, ...]
    cue: CuePosition
    target: int | None = None
    cue_index: int | None = None
    text_pair: str | None = None

    @property
    def words(self) -> list[str]:
        return self.text.split()


@dataclass(frozen=True)
class ClozeItem:
    """Fill in the blank: which of ``candidates`` is word ``target`` of ``text``? ``answer`` is the right one.

    ``cue`` says where the words that decide it sit: ``left``/``right`` (adjacent), ``far`` (left, across
    a relative clause) or ``both`` (the words on both sides jointly). The candidates differ only in what the
    cue decides ("run"/"runs", "a"/"an", "and"/"but"), so the rest of the sentence cannot tell them apart.
    """

    text: str
    target: int
    candidates: tuple[str, ...]
    answer: str
    cue: ClozeCue

    @property
    def words(self) -> list[str]:
        return self.text.split()


def _balanced(words: tuple[str, ...], k: int) -> tuple[str, ...]:
    """Up to ``k`` words, alternating vowel-initial and consonant-initial ones, in lexicon order."""
    vowel = [w for w in words if w[0] in VOWELS]
    consonant = [w for w in words if w[0] not in VOWELS]
    picked = [w for pair in itertools.zip_longest(vowel, consonant) for w in pair if w is not None][:k]
    return tuple(w for w in words if w in picked)


@dataclass
class _Builder:
    """Words and tags of a sentence under construction; "a" is fixed to "a"/"an" at the end."""

    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def add(self, word: str, tag: str) -> int:
        self.words.append(word)
        self.tags.append(tag)
        return len(self.words) - 1


def _position(distance: int, side: Literal["left", "right"]) -> CuePosition:
    return "far" if distance >= FAR else side


class ToyLanguage:
    """Seeded generator of the course's toy language: the same seed gives the same calls' outputs.

    >>> lang = ToyLanguage(seed=0)
    >>> lang.sentence().text  # doctest: +SKIP
    'the dogs that the cat sees run .'
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        lexicon: int | None = None,
        p_indefinite: float | None = None,
        p_coordination: float = 0.0,
    ) -> None:
        """Args:
        seed: the random seed; the same seed and knobs give the same outputs.
        lexicon: keep at most this many words of each class (nouns per topic, neutral adjectives and
            adjective/noun words -- half vowel-initial -- positive and negative adjectives, intransitive and
            transitive verbs), plus every noun/verb word, which the part-of-speech cues need. None: all.
        p_indefinite: the chance that a singular noun phrase starts with "a"/"an" (None: 1 in 4, the
            default draw from "the", "the", "a", "this"); the rest take "the" or "this".
        p_coordination: the share of copula sentences whose predicate is "ADJ and/but ADJ" (no negation).
        """
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if lexicon is not None and (not isinstance(lexicon, int) or isinstance(lexicon, bool) or lexicon < 2):
            raise ValueError(f"lexicon must be an int >= 2 or None, got {lexicon!r}")
        if p_indefinite is not None and not 0.0 <= p_indefinite <= 1.0:
            raise ValueError(f"p_indefinite must lie in [0, 1] or be None, got {p_indefinite!r}")
        if not 0.0 <= p_coordination <= 1.0:
            raise ValueError(f"p_coordination must lie in [0, 1], got {p_coordination!r}")
        self.seed = seed
        self.rng = random.Random(seed)
        self.lexicon, self.p_indefinite, self.p_coordination = lexicon, p_indefinite, p_coordination
        self.pos_tags: tuple[str, ...] = POS_TAGS + ((CCONJ,) if p_coordination > 0 else ())
        """The tag set of this language's sentences: ``POS_TAGS``, plus "CCONJ" with coordination."""
        k = lexicon
        self.nouns: dict[str, tuple[tuple[str, str], ...]] = NOUNS
        self.neutral, self.adj_noun, self.positive, self.negative = NEUTRAL, ADJ_NOUN, POSITIVE, NEGATIVE
        self.intransitive, self.transitive = INTRANSITIVE, TRANSITIVE
        if k is not None:
            self.nouns = {}
            for topic, pairs in NOUNS.items():
                keep = set(_balanced(tuple(sg for sg, _ in pairs if sg not in NOUN_VERB), k))
                self.nouns[topic] = tuple(p for p in pairs if p[0] in keep or p[0] in NOUN_VERB)
            self.neutral, self.adj_noun = _balanced(NEUTRAL, k), _balanced(ADJ_NOUN, k)
            self.positive, self.negative = POSITIVE[:k], NEGATIVE[:k]
            self.intransitive, self.transitive = (
                tuple(v for v in verbs if v[0] in NOUN_VERB or v in verbs[:k]) for verbs in (INTRANSITIVE, TRANSITIVE)
            )

    # ----------------------------------------------------------------------------- phrases
    def _noun(self, topic: str, number: int) -> str:
        if number == SG and self.rng.random() < 0.04:
            return self.rng.choice(self.adj_noun)  # "the orange", "the iron": topic-free, singular only
        return self.rng.choice(self.nouns[topic])[number]

    def _noun_phrase(self, b: _Builder, number: int, topic: str, head: str | None = None) -> int:
        """Append DET [ADJ] NOUN; return the head noun's index."""
        head = head if head is not None else self._noun(topic, number)
        if number == SG and self.p_indefinite is not None:
            b.add("a" if self.rng.random() < self.p_indefinite else self.rng.choice(("the", "this")), "DET")
        else:
            b.add(self.rng.choice(SG_DETS if number == SG else PL_DETS), "DET")
        if self.rng.random() < 0.35:
            plain = head in NOUN_VERB or head in ADJ_NOUN  # never two ambiguous words side by side
            pool = self.neutral if plain or self.rng.random() < 0.8 else self.adj_noun
            b.add(self.rng.choice(pool), "ADJ")
        return b.add(head, "NOUN")

    def _verb(self, number: int, transitive: bool, after: str) -> str:
        verbs = self.transitive if transitive else self.intransitive
        pool = [v for v in verbs if not (after in ADJ_NOUN and v[0] in NOUN_VERB)]
        return self.rng.choice(pool)[1 - number]  # SG -> 3rd-person form, PL -> base form

    # ----------------------------------------------------------------------------- sentences
    def sentence(
        self,
        *,
        topic: str | None = None,
        kind: Literal["copula", "intransitive", "transitive"] | None = None,
        number: int | None = None,
        relative: Literal["object", "subject"] | bool | None = None,
        negated: bool | None = None,
        subject: str | None = None,
        coordinated: bool | None = None,
    ) -> Sentence:
        """Generate one acceptable sentence; unset arguments are drawn at random.

        ``kind="copula"`` gives "NP is [not] [very] ADJ ." (the only kind with a sentiment);
        ``relative`` puts an object ("that the cat sees") or subject ("that sees the cat") relative
        clause between the subject and its verb (True: either, False: none); ``subject`` fixes the
        head noun (singular or plural form, which then sets ``number``). ``coordinated`` (copula only;
        None: drawn with ``p_coordination``) makes the predicate "ADJ and ADJ" (one polarity, which is then
        the sentiment) or "ADJ but ADJ" (opposite polarities, sentiment None), never negated.
        """
        rng = self.rng
        topic = topic if topic is not None else rng.choice(TOPICS)
        if topic not in self.nouns:
            raise ValueError(f"topic must be one of {TOPICS}, got {topic!r}")
        kind = kind if kind is not None else rng.choice(("copula", "intransitive", "transitive"))
        if kind not in ("copula", "intransitive", "transitive"):
            raise ValueError(f"kind must be 'copula', 'intransitive' or 'transitive', got {kind!r}")
        if subject is not None:
            if subject not in self.adj_noun and not any(subject in n for n in self.nouns[topic]):
                raise ValueError(f"subject {subject!r} is not a noun of topic {topic!r} nor one of {self.adj_noun}")
            number = SG if subject in self.adj_noun or any(subject == n[SG] for n in self.nouns[topic]) else PL
        number = number if number is not None else rng.choice((SG, PL))
        if relative is None or relative is True:
            relative = rng.choice(("object", "subject", None) if relative is None else ("object", "subject"))
        relative = relative or None
        if relative not in ("object", "subject", None):
            raise ValueError(f"relative must be 'object', 'subject', a bool or None, got {relative!r}")
        b, cues = _Builder(), []

        head = self._noun_phrase(b, number, topic, subject)
        if relative == "object":  # "the dogs that the cat sees": the inner noun is an attractor
            b.add("that", "PRON")
            inner = self._noun_phrase(b, 1 - number, topic)
            b.add(self._verb(1 - number, True, after=b.words[inner]), "VERB")
        elif relative == "subject":  # "the dogs that see the cat"
            b.add("that", "PRON")
            b.add(self._verb(number, True, after="that"), "VERB")
            self._noun_phrase(b, 1 - number, topic)

        sentiment = None
        if kind == "copula":
            verb = b.add("is" if number == SG else "are", "AUX")
            if coordinated is None:
                coordinated = self.p_coordination > 0 and rng.random() < self.p_coordination
            if coordinated and negated:
                raise ValueError("a coordinated predicate is never negated: pass negated=False or None")
            negated = False if coordinated else negated if negated is not None else rng.random() < P_NEGATION
            not_index = b.add("not", "PART") if negated else None
            for word in rng.sample(INTENSIFIERS, rng.choice((0, 0, 1, 2))):
                b.add(word, "ADV")
            positive = rng.random() < 0.5
            adjective = b.add(rng.choice(self.positive if positive else self.negative), "ADJ")
            sentiment: int | None = int(positive != bool(negated))
            if not_index is not None:
                cues.append(Cue("negation", adjective, not_index, _position(adjective - not_index, "left")))
            if coordinated:  # "good and nice" / "good but dull": the conjunction needs both adjectives
                same = rng.random() < 0.5
                conjunction = b.add("and" if same else "but", CCONJ)
                pool = self.positive if positive == same else self.negative
                b.add(rng.choice([w for w in pool if w != b.words[adjective]]), "ADJ")
                sentiment = sentiment if same else None
                cues.append(Cue("coordination", conjunction, adjective, "both"))
        else:
            verb = b.add(self._verb(number, kind == "transitive", after=b.words[-1]), "VERB")
            if kind == "transitive":
                self._noun_phrase(b, rng.choice((SG, PL)), topic)
        b.add(".", "PUNCT")
        cues.append(Cue("agreement", verb, head, _position(verb - head, "left")))

        for i, word in enumerate(b.words):
            if word == "a":
                b.words[i] = "an" if b.words[i + 1][0] in VOWELS else "a"
                cues.append(Cue("article", i, i + 1, "right"))
            elif word in NOUN_VERB:
                cues.append(Cue("pos", i, i - 1, "left"))
            elif word in ADJ_NOUN:
                cues.append(Cue("pos", i, i + 1, "right"))
        cues.sort(key=lambda c: c.target)
        return Sentence(tuple(b.words), tuple(b.tags), topic, sentiment, True, tuple(cues))

    @staticmethod
    def with_error(sentence: Sentence, phenomenon: Literal["agreement", "article"] = "agreement") -> Sentence:
        """The same sentence with one error: the main verb's number flipped, or "a" <-> "an" swapped."""
        cue = sentence.cue(phenomenon)
        if phenomenon not in ("agreement", "article") or cue is None:
            raise ValueError(f"phenomenon must be 'agreement' or 'article' and occur in {sentence.text!r}")
        words = list(sentence.words)
        words[cue.target] = (
            _FLIP_NUMBER[words[cue.target]] if phenomenon == "agreement" else {"a": "an", "an": "a"}[words[cue.target]]
        )
        return replace(sentence, words=tuple(words), acceptable=False)

    def document(self, n_sentences: int, topic: str | None = None) -> Document:
        """``n_sentences`` sentences on one topic; about two in three share the document's subject."""
        if n_sentences < 1:
            raise ValueError(f"n_sentences must be >= 1, got {n_sentences}")
        topic = topic if topic is not None else self.rng.choice(TOPICS)
        subject = self.rng.choice(self.nouns[topic])
        sentences = tuple(
            self.sentence(topic=topic, subject=self.rng.choice(subject) if self.rng.random() < 0.65 else None)
            for _ in range(n_sentences)
        )
        return Document(topic, subject[SG], sentences)

    def corpus(self, n_docs: int, sentences_per_doc: tuple[int, int] = (3, 6)) -> list[Document]:
        """``n_docs`` documents of ``sentences_per_doc`` (inclusive range) sentences each."""
        lo, hi = sentences_per_doc
        if n_docs < 0 or not 1 <= lo <= hi:
            raise ValueError(f"need n_docs >= 0 and 1 <= lo <= hi, got n_docs={n_docs}, sentences_per_doc={lo, hi}")
        return [self.document(self.rng.randint(lo, hi)) for _ in range(n_docs)]

    # ----------------------------------------------------------------------------- tasks
    def sentiment_task(self, n: int) -> list[TaskItem]:
        """Copula sentences labelled 1 (positive) / 0 (negative); negated items have a ``left``/``far`` cue.

        No relative clauses: fewer distractor words, so tiny models learn the task from a few hundred items.
        """
        items = []
        for _ in range(n):
            s = self.sentence(kind="copula", relative=False, coordinated=False)
            cue = s.cue("negation")
            adjective = len(s.words) - 2
            items.append(
                TaskItem(s.text, s.sentiment, "none", adjective, adjective)
                if cue is None
                else TaskItem(s.text, s.sentiment, cue.position, cue.target, cue.cue_index)
            )
        return items

    def acceptability_task(self, n: int, p_error: float = 0.5) -> list[TaskItem]:
        """Sentences labelled 1 (acceptable) / 0 (one injected error).

        Half the items test agreement (``left`` without, ``far`` with a relative clause), half the
        article ("a" vs "an", ``right``); ``target`` is the word an error would change.
        """
        if not 0.0 <= p_error <= 1.0:
            raise ValueError(f"p_error must lie in [0, 1], got {p_error}")
        items = []
        while len(items) < n:
            phenomenon = self.rng.choice(("agreement", "article"))
            s = self.sentence(relative=self.rng.random() < 0.5 if phenomenon == "agreement" else None)
            cue = s.cue(phenomenon)
            if cue is None:  # no article drawn: try another sentence
                continue
            if self.rng.random() < p_error:
                s = self.with_error(s, phenomenon)
            items.append(TaskItem(s.text, int(s.acceptable), cue.position, cue.target, cue.cue_index))
        return items

    def continuation_task(self, n: int, p_error: float = 0.5) -> list[TaskItem]:
        """Sentence pairs labelled 1 (B continues A) / 0 (B continues A with its verb's number flipped).

        NSP's format with a cue the language decides: one sentence is split before its main verb, A = the
        subject phrase (with a relative clause, whose noun has the other number, in half the items: ``far``;
        else ``left``), B = the verb and the rest. Whether B continues A needs both segments: the subject's
        number is in A, the verb's in B. ``text`` is A, ``text_pair`` is B.
        """
        if not 0.0 <= p_error <= 1.0:
            raise ValueError(f"p_error must lie in [0, 1], got {p_error}")
        items = []
        for _ in range(n):
            s = self.sentence(relative=self.rng.random() < 0.5)
            cue = s.cue("agreement")
            assert cue is not None  # every sentence has a subject and a main verb
            if self.rng.random() < p_error:
                s = self.with_error(s, "agreement")
            a, b = " ".join(s.words[: cue.target]), " ".join(s.words[cue.target :])
            items.append(TaskItem(a, int(s.acceptable), cue.position, text_pair=b))
        return items

    def pos_task(self, n: int) -> list[TaskItem]:
        """Sentences with one tag id per word (indices into ``pos_tags``); each holds an ambiguous word whose
        cue is ``left`` or ``right``."""
        items = []
        while len(items) < n:
            s = self.sentence()
            ambiguous = [c for c in s.cues if c.phenomenon == "pos"]
            if not ambiguous:
                s = self._ambiguous_sentence()
                ambiguous = [c for c in s.cues if c.phenomenon == "pos"]
            cue = self.rng.choice(ambiguous)
            labels = tuple(self.pos_tags.index(t) for t in s.tags)
            items.append(TaskItem(s.text, labels, cue.position, cue.target, cue.cue_index))
        return items

    def _ambiguous_sentence(self) -> Sentence:
        """A sentence whose subject is an ambiguous word: "the orange rolls", "the watches sleep"."""
        if self.rng.random() < 0.5:
            return self.sentence(subject=self.rng.choice(self.adj_noun))
        topic = self.rng.choice(TOPICS)
        nouns = [n for n in self.nouns[topic] if n[SG] in NOUN_VERB]
        return self.sentence(topic=topic, subject=self.rng.choice(self.rng.choice(nouns)))

    def nsp_task(self, n: int, sentences_per_doc: tuple[int, int] = (3, 6)) -> list[TaskItem]:
        """Sentence pairs labelled 0 (B follows A in its document) / 1 (B is a random sentence).

        True pairs share a topic and usually a subject, so the cue is the other sentence: ``far``.
        """
        items: list[TaskItem] = []
        while len(items) < n:
            documents = [d.texts for d in self.corpus(max(2, n // 2), sentences_per_doc)]
            pairs = next_sentence_pairs(documents, rng=self.rng)
            items += [TaskItem(a, label, "far", text_pair=b_) for a, b_, label in pairs]
        return items[:n]

    def cloze_task(self, n: int, cue: ClozeCue) -> list[ClozeItem]:
        """``n`` fill-in-the-blank items whose answer the ``cue`` decides; answers alternate between candidates.

        * ``left``: the main verb after its subject ("the dogs [run] ."), candidates its two number forms;
        * ``far``: the same across a relative clause, whose noun has the other number (an attractor);
        * ``right``: the article, "a" or "an", decided by the next word;
        * ``both``: the conjunction of "ADJ and/but ADJ", decided by the two adjectives jointly: with
          either one alone, "and" and "but" are equally likely (needs ``p_coordination > 0``).

        Half the items have each answer, so the majority baseline is 1/2 for every cue.
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if cue not in CLOZE_CUES:
            raise ValueError(f"cue must be one of {CLOZE_CUES}, got {cue!r}")
        if cue == "both" and self.p_coordination == 0:
            raise ValueError("cue='both' needs a ToyLanguage with p_coordination > 0 (the and/but construction)")
        items: list[ClozeItem] = []
        while len(items) < n:
            want = len(items) % 2  # alternate answers: SG/PL, "a"/"an", "and"/"but"
            if cue in ("left", "far"):
                s = self.sentence(number=want, relative=cue == "far")
                c = s.cue("agreement")
                verb = s.words[c.target]
                candidates = (verb, _FLIP_NUMBER[verb]) if want == PL else (_FLIP_NUMBER[verb], verb)  # (PL, SG)
            elif cue == "right":
                s = self.sentence()
                article = ("a", "an")[want]
                c = next((c for c in s.cues if c.phenomenon == "article" and s.words[c.target] == article), None)
                candidates = ("a", "an")
            else:
                s = self.sentence(kind="copula", relative=False, coordinated=True)
                c = s.cue("coordination")
                c = c if s.words[c.target] == ("and", "but")[want] else None
                candidates = ("and", "but")
            if c is not None:
                items.append(ClozeItem(s.text, c.target, candidates, s.words[c.target], cue))
        return items
