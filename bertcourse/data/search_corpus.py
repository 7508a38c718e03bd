"""A small corpus for semantic search: 48 everyday English sentences, six on each of eight topics.

Written for the course (chapter 09); no two sentences of a topic share their key words, so finding the
right topic takes meaning, not word overlap.
"""

from __future__ import annotations

__all__ = ["SEARCH_CORPUS", "search_sentences"]

SEARCH_CORPUS: dict[str, tuple[str, ...]] = {
    "cooking": (
        "Simmer the tomatoes with garlic until the sauce thickens.",
        "Knead the dough for ten minutes, then let it rise overnight.",
        "She seasoned the soup with a pinch of salt and fresh basil.",
        "Roast the vegetables in a hot oven until they turn golden.",
        "Whisk the eggs and sugar before folding in the flour.",
        "He fried the onions slowly so they would caramelise.",
    ),
    "weather": (
        "Heavy rain is expected across the region tomorrow morning.",
        "A cold front will bring snow to the mountains tonight.",
        "The afternoon was hot and humid, with thunderstorms later.",
        "Strong winds knocked down several trees along the coast.",
        "Fog made it hard to see more than a few metres ahead.",
        "After a week of drought, the clouds finally broke open.",
    ),
    "sports": (
        "The striker scored twice in the second half of the match.",
        "She won the marathon in a new course record.",
        "The team lost the final after a penalty shoot-out.",
        "He has trained every morning for the swimming championship.",
        "The goalkeeper saved three shots in extra time.",
        "Our tennis coach made us practise serves for an hour.",
    ),
    "computers": (
        "The program crashed because a variable was never initialised.",
        "Restart the router if the wireless connection keeps dropping.",
        "This laptop has sixteen gigabytes of memory and a fast processor.",
        "She fixed the bug by adding a check for empty input.",
        "Back up your files before installing the operating system update.",
        "The database query became slow once the table grew large.",
    ),
    "music": (
        "The orchestra played a symphony by Beethoven last night.",
        "He strummed a few chords on his old acoustic guitar.",
        "Her new album mixes jazz with electronic beats.",
        "The choir rehearsed the song until every harmony was clean.",
        "A drummer keeps the band in time during the concert.",
        "She practises the piano for two hours after school.",
    ),
    "travel": (
        "Our flight to Lisbon was delayed by three hours.",
        "We booked a small hotel close to the old harbour.",
        "Remember to bring your passport to the airport.",
        "The night train crosses the border just before dawn.",
        "They hiked through the valley and camped beside a lake.",
        "A taxi took us from the station to the museum.",
    ),
    "health": (
        "The doctor prescribed antibiotics for the infection.",
        "Regular exercise lowers the risk of heart disease.",
        "Drink plenty of water when you have a fever.",
        "He sprained his ankle and needs to rest it for a week.",
        "A balanced diet includes fruit, vegetables and whole grains.",
        "The nurse measured her blood pressure before the surgery.",
    ),
    "finance": (
        "The bank raised its interest rates again this quarter.",
        "Shares fell sharply after the company reported a loss.",
        "She saves a part of her salary in a pension fund.",
        "Inflation has made groceries noticeably more expensive.",
        "The loan must be repaid in monthly instalments.",
        "Investors moved their money into government bonds.",
    ),
}
"""Topic -> its sentences."""


def search_sentences() -> tuple[list[str], list[str]]:
    """All sentences of :data:`SEARCH_CORPUS` and their topics, topic by topic: (sentences, topics)."""
    sentences = [s for topic in SEARCH_CORPUS for s in SEARCH_CORPUS[topic]]
    topics = [topic for topic in SEARCH_CORPUS for _ in SEARCH_CORPUS[topic]]
    return sentences, topics
