"""The toy language: deterministic per seed, and every label right by construction (checked from the lexicon)."""

from __future__ import annotations

import pytest

from bertcourse.data.toylang import (
    ADJ_NOUN,
    FAR,
    INTRANSITIVE,
    NEGATIVE,
    NOUN_VERB,
    NOUNS,
    POS_TAGS,
    POSITIVE,
    TRANSITIVE,
    VOWELS,
    Sentence,
    ToyLanguage,
)

SINGULAR_NOUNS = {sg for nouns in NOUNS.values() for sg, _ in nouns} | set(ADJ_NOUN)
PLURAL_NOUNS = {pl for nouns in NOUNS.values() for _, pl in nouns}
SINGULAR_VERBS = {third for _, third in INTRANSITIVE + TRANSITIVE} | {"is"}
PLURAL_VERBS = {base for base, _ in INTRANSITIVE + TRANSITIVE} | {"are"}
TOPIC_OF = {w: topic for topic, nouns in NOUNS.items() for pair in nouns for w in pair}


@pytest.fixture(scope="module")
def sentences() -> list[Sentence]:
    lang = ToyLanguage(seed=7)
    return [lang.sentence() for _ in range(1500)]


def _agrees(s: Sentence) -> bool:
    cue = s.cue("agreement")
    noun, verb = s.words[cue.cue_index], s.words[cue.target]
    return (noun in SINGULAR_NOUNS and verb in SINGULAR_VERBS) or (noun in PLURAL_NOUNS and verb in PLURAL_VERBS)


def _articles_right(s: Sentence) -> bool:
    return all(
        (w != "a" or s.words[i + 1][0] not in VOWELS) and (w != "an" or s.words[i + 1][0] in VOWELS)
        for i, w in enumerate(s.words)
    )


def test_same_seed_same_output_other_seed_other_output() -> None:
    a, b, c = ToyLanguage(3), ToyLanguage(3), ToyLanguage(4)
    assert a.corpus(6) == b.corpus(6)
    assert a.pos_task(20) == b.pos_task(20)
    assert a.acceptability_task(20) == b.acceptability_task(20)
    assert a.sentiment_task(20) == b.sentiment_task(20)
    assert ToyLanguage(3).corpus(6) != c.corpus(6)


def test_words_tags_and_text_align(sentences: list[Sentence]) -> None:
    for s in sentences:
        assert s.text.split() == list(s.words)
        assert len(s.tags) == len(s.words)
        assert set(s.tags) <= set(POS_TAGS)
        assert s.words[-1] == "." and s.tags[-1] == "PUNCT"
        assert s.acceptable


def test_a_before_consonants_an_before_vowels(sentences: list[Sentence]) -> None:
    counts = {"a": 0, "an": 0}
    for s in sentences:
        assert _articles_right(s), s.text
        for w in s.words:
            counts[w] = counts.get(w, 0) + 1
    assert counts["a"] > 50 and counts["an"] > 50  # both forms are exercised


def test_subject_verb_agreement_and_injected_error(sentences: list[Sentence]) -> None:
    lang = ToyLanguage(0)
    for s in sentences:
        assert _agrees(s), s.text
        bad = lang.with_error(s, "agreement")
        assert not bad.acceptable and not _agrees(bad)
        assert [i for i, (x, y) in enumerate(zip(s.words, bad.words, strict=True)) if x != y] == [
            s.cue("agreement").target
        ]


def test_article_error_breaks_only_the_article(sentences: list[Sentence]) -> None:
    with_article = [s for s in sentences if s.cue("article")]
    assert len(with_article) > 100
    for s in with_article:
        bad = ToyLanguage.with_error(s, "article")
        assert not bad.acceptable and not _articles_right(bad)
    with pytest.raises(ValueError, match="phenomenon"):
        ToyLanguage.with_error(next(s for s in sentences if not s.cue("article")), "article")


def test_relative_clause_puts_an_attractor_between_subject_and_verb(sentences: list[Sentence]) -> None:
    far = [s for s in sentences if "that" in s.words]
    assert len(far) > 300
    for s in far:
        cue = s.cue("agreement")
        assert cue.position == "far" and cue.target - cue.cue_index >= FAR
        nearest = max(i for i in range(cue.target) if s.tags[i] == "NOUN")
        assert nearest != cue.cue_index
        assert (s.words[nearest] in SINGULAR_NOUNS) != (s.words[cue.cue_index] in SINGULAR_NOUNS), s.text


def test_negation_flips_sentiment(sentences: list[Sentence]) -> None:
    seen = set()
    for s in sentences:
        if s.sentiment is None:
            assert "is" not in s.words and "are" not in s.words
            continue
        adjective = s.words[-2]
        assert adjective in POSITIVE or adjective in NEGATIVE
        negated = "not" in s.words
        assert s.sentiment == int((adjective in POSITIVE) != negated), s.text
        seen.add((adjective in POSITIVE, negated))
        if negated:
            cue = s.cue("negation")
            assert s.words[cue.cue_index] == "not" and cue.target == len(s.words) - 2
    assert len(seen) == 4  # positive and negative adjectives, each with and without "not"


def test_ambiguous_words_are_tagged_by_their_cue(sentences: list[Sentence]) -> None:
    readings = set()
    for s in sentences:
        for i, w in enumerate(s.words):
            if w in NOUN_VERB:
                noun = s.tags[i - 1] in ("DET", "ADJ")
                assert s.tags[i] == ("NOUN" if noun else "VERB"), s.text
                readings.add(("NV", noun))
            elif w in ADJ_NOUN:
                adjective = s.tags[i + 1] == "NOUN"
                assert s.tags[i] == ("ADJ" if adjective else "NOUN"), s.text
                readings.add(("AN", adjective))
                assert s.words[i - 1] not in NOUN_VERB and s.words[i + 1] not in NOUN_VERB
    assert len(readings) == 4  # both readings of both kinds occur


def test_cue_positions_match_distances(sentences: list[Sentence]) -> None:
    for s in sentences:
        for cue in s.cues:
            distance = abs(cue.target - cue.cue_index)
            side = "left" if cue.cue_index < cue.target else "right"
            assert cue.position == ("far" if distance >= FAR else side), (s.text, cue)


def test_pos_task_items_hold_an_ambiguous_word_with_its_cue() -> None:
    items = ToyLanguage(1).pos_task(300)
    assert {it.cue for it in items} == {"left", "right"}
    for it in items:
        words, tags = it.words, [POS_TAGS[t] for t in it.label]
        assert len(tags) == len(words)
        target = words[it.target]
        if it.cue == "left":
            assert target in NOUN_VERB and it.cue_index == it.target - 1
        else:
            assert target in ADJ_NOUN and it.cue_index == it.target + 1


def test_acceptability_task_labels_match_the_sentence() -> None:
    items = ToyLanguage(2).acceptability_task(400)
    assert {it.cue for it in items} == {"left", "right", "far"}
    assert 0.35 < sum(it.label for it in items) / len(items) < 0.65
    for it in items:
        words = it.words
        s = Sentence(tuple(words), ("X",) * len(words), "", None, bool(it.label), ())
        if it.cue == "right":
            assert words[it.target] in ("a", "an")
            assert _articles_right(s) == bool(it.label), it
        else:
            noun, verb = words[it.cue_index], words[it.target]
            agrees = (noun in SINGULAR_NOUNS) == (verb in SINGULAR_VERBS)
            assert agrees == bool(it.label), it


def test_continuation_pairs_are_labelled_by_agreement_across_the_two_segments() -> None:
    """A = the subject phrase, B = the main verb and the rest: the label is whether B's verb agrees with A's
    subject, so neither segment alone decides it; relative clauses (``far``) put an attractor noun in A."""
    items = ToyLanguage(4).continuation_task(400)
    assert {it.cue for it in items} == {"left", "far"}
    assert 0.4 < sum(it.label for it in items) / len(items) < 0.6
    for it in items:
        a, b = it.words, it.text_pair.split()
        subject = a[a.index("that") - 1] if it.cue == "far" else a[-1]
        assert b[-1] == "." and "." not in a
        agrees = (subject in SINGULAR_NOUNS) == (b[0] in SINGULAR_VERBS)
        assert agrees == bool(it.label), it
    with pytest.raises(ValueError, match="p_error"):
        ToyLanguage(0).continuation_task(3, p_error=-0.1)


def test_sentiment_task_cues() -> None:
    items = ToyLanguage(5).sentiment_task(300)
    assert {it.cue for it in items} == {"none", "left", "far"}
    assert 0.35 < sum(it.label for it in items) / len(items) < 0.65
    for it in items:
        assert (it.cue == "none") == ("not" not in it.words)


def test_documents_share_topic_and_nsp_pairs_are_labelled() -> None:
    lang = ToyLanguage(11)
    doc = lang.document(5)
    assert len(doc.sentences) == 5
    nouns = [
        w for s in doc.sentences for w, t in zip(s.words, s.tags, strict=True) if t == "NOUN" and w not in ADJ_NOUN
    ]
    assert nouns and all(TOPIC_OF[w] == doc.topic for w in nouns)
    items = lang.nsp_task(200)
    assert len(items) == 200 and {it.label for it in items} == {0, 1}
    for it in items:
        if it.label == 0:  # B follows A in one document: one topic
            words = it.words + it.text_pair.split()
            topics = {TOPIC_OF[w] for w in words if w in TOPIC_OF and w not in NOUN_VERB}
            assert len(topics) <= 1, it  # 0 only when every noun is also a verb ("flies", "watch")


def test_bad_arguments_raise() -> None:
    lang = ToyLanguage(0)
    with pytest.raises(ValueError, match="seed"):
        ToyLanguage(-1)
    with pytest.raises(ValueError, match="topic"):
        lang.sentence(topic="sports")
    with pytest.raises(ValueError, match="kind"):
        lang.sentence(kind="question")
    with pytest.raises(ValueError, match="subject"):
        lang.sentence(topic="food", subject="dog")
    with pytest.raises(ValueError, match="n_sentences"):
        lang.document(0)
    with pytest.raises(ValueError, match="p_error"):
        lang.acceptability_task(3, p_error=2.0)


# ----------------------------------------------------------------------------- experiment knobs (chapter 08)
def test_knobs_off_by_default_leave_outputs_unchanged() -> None:
    explicit = ToyLanguage(3, lexicon=None, p_indefinite=None, p_coordination=0.0)
    assert explicit.corpus(6) == ToyLanguage(3).corpus(6)
    assert explicit.pos_tags == POS_TAGS


def test_small_lexicon_keeps_vowel_and_consonant_words_and_every_cue() -> None:
    lang = ToyLanguage(0, lexicon=4)
    for topic, pairs in lang.nouns.items():
        singular = [sg for sg, _ in pairs if sg not in NOUN_VERB]
        assert len(singular) == 4 and sum(w[0] in VOWELS for w in singular) == 2, topic
        assert {sg for sg, _ in NOUNS[topic] if sg in NOUN_VERB} <= {sg for sg, _ in pairs}
    words = {w for s in (lang.sentence() for _ in range(400)) for w in s.words}
    allowed = (
        {w for pairs in lang.nouns.values() for pair in pairs for w in pair}
        | set(lang.neutral + lang.adj_noun + lang.positive + lang.negative)
        | {w for pair in lang.intransitive + lang.transitive for w in pair}
    )
    content = {w for w in words if w in SINGULAR_NOUNS | PLURAL_NOUNS | SINGULAR_VERBS | PLURAL_VERBS}
    assert content - {"is", "are"} <= allowed
    assert {it.cue for it in lang.pos_task(100)} == {"left", "right"}
    with pytest.raises(ValueError, match="lexicon"):
        ToyLanguage(0, lexicon=1)


def test_p_indefinite_sets_the_article_rate() -> None:
    lang = ToyLanguage(0, p_indefinite=0.6)
    dets = [lang.sentence(number=0, relative=False).words[0] for _ in range(600)]
    share = sum(d in ("a", "an") for d in dets) / len(dets)
    assert 0.52 < share < 0.68
    with pytest.raises(ValueError, match="p_indefinite"):
        ToyLanguage(0, p_indefinite=1.5)


def test_coordination_and_joins_one_polarity_but_opposite_ones() -> None:
    lang = ToyLanguage(4, p_coordination=1.0)
    assert lang.pos_tags[-1] == "CCONJ"
    seen = set()
    for _ in range(300):
        s = lang.sentence(kind="copula")
        cue = s.cue("coordination")
        assert cue.position == "both" and "not" not in s.words
        left, conjunction, right = s.words[cue.target - 1 : cue.target + 2]
        assert s.tags[cue.target] == "CCONJ" and left != right
        same = (left in POSITIVE) == (right in POSITIVE)
        assert conjunction == ("and" if same else "but"), s.text
        assert s.sentiment == (int(left in POSITIVE) if same else None)
        seen.add((left in POSITIVE, conjunction))
    assert len(seen) == 4
    assert all(it.cue in ("none", "left", "far") for it in lang.sentiment_task(50))  # never coordinated
    with pytest.raises(ValueError, match="negated"):
        lang.sentence(kind="copula", coordinated=True, negated=True)


@pytest.mark.parametrize("cue", ["left", "right", "far", "both"])
def test_cloze_items_are_balanced_and_decided_by_their_cue(cue: str) -> None:
    items = ToyLanguage(9, lexicon=4, p_indefinite=0.5, p_coordination=0.3).cloze_task(120, cue)
    assert len(items) == 120 and {it.cue for it in items} == {cue}
    answers = [it.candidates.index(it.answer) for it in items]
    assert sum(answers) == 60  # each of the two candidates is the answer of half the items
    for it in items:
        words = it.words
        assert words[it.target] == it.answer and len(it.candidates) == 2
        if cue == "right":
            assert (it.answer == "an") == (words[it.target + 1][0] in VOWELS)
        elif cue == "both":
            same = (words[it.target - 1] in POSITIVE) == (words[it.target + 1] in POSITIVE)
            assert it.answer == ("and" if same else "but")
        else:
            other = list(words)
            other[it.target] = next(c for c in it.candidates if c != it.answer)
            assert _agrees_words(words, it.target) and not _agrees_words(other, it.target), it.text
            assert ("that" in words) == (cue == "far")


def _agrees_words(words: list[str], verb: int) -> bool:
    """The subject is the word before "that" (a relative clause) or else before the verb."""
    subject = words.index("that") - 1 if "that" in words[:verb] else verb - 1
    return (words[subject] in SINGULAR_NOUNS) == (words[verb] in SINGULAR_VERBS)


def test_cloze_task_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cue"):
        ToyLanguage(0).cloze_task(4, "middle")
    with pytest.raises(ValueError, match="p_coordination"):
        ToyLanguage(0).cloze_task(4, "both")
