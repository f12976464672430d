"""Is an answer a summary of its source? Cheap checks that need no extra model.

A rising reward can hide a broken model: a length reward alone is maximised by "Awesome!" padded to 50
characters. These checks read the text the way a user would, roughly:

- `grounding`: the share of the answer's content words that occur in the source (a summary reuses the
  text's names and facts; an invented answer does not). Summary vocabulary ("author", "asks", "post")
  counts neither way, since a good summary of a first-person post needs it.
- `repetition`: the share of the answer's word 3-grams that repeat an earlier one ("the cat the cat ...").
- `degenerate`: why an answer is no answer at all (empty, too short, one word repeated, chat filler such as
  apologies or thanks instead of content), or "" when it is fine.
- `is_summary`: the rule the evaluation counts. An answer passes when it is not degenerate, repetition <= 0.25,
  it has at least two grounded content words and grounding >= 0.5, and it is shorter than the source
  (at most `MAX_SHARE` of its characters). A short faithful sentence passes; a truncated copy of the first
  line may pass (it is grounded and short, if lazy); "Awesome!" never does.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    "a an the and or but if then so of to in on at for with from by as is are was were be been being it its "
    "this that these those i you he she we they me my your our their his her them us do does did not no yes "
    "have has had will would can could should about into over after before just very really also than too "
    "i'm i've i'd it's he's she's they're we're you're don't doesn't didn't can't won't isn't wasn't there "
    "here what which who whom when where why how all any some more most other such only own same both each "
    "few many much one two out up down off again further once while because until within without between "
    "through during above below under now still even get got going make made may might must shall".split()
)
# Words a summary uses about the text rather than from it: neither grounded nor invented.
SUMMARY_WORDS = frozenset(
    "author writer poster person user narrator op someone people text post article document story passage "
    "summary summarize summarizes summarized describes describe explains explain discusses discuss shares "
    "share asks ask wants want seeks seek wonders wonder talks talk writes write says say tells tell advice "
    "help whether sentence main point overall highlights highlight mentions mention notes note reports report "
    "covers cover outlines outline argues argue suggests suggest considers consider explores explore focuses "
    "focus touches touch regarding topic issue".split()
)
FILLER = re.compile(
    r"\b(i'?m (so )?sorry|i apologi[sz]e|thank(s| you)|you'?re welcome|glad (i|to) (could )?help|awesome|"
    r"great question|as an ai|language model|i can(not|'t) (help|assist)|how can i (help|assist)|"
    r"feel free to|happy to help|let me know|hope this helps|good luck)\b",
    re.IGNORECASE,
)
MIN_WORDS = 4
MIN_GROUNDING = 0.5
MIN_GROUNDED_WORDS = 2
MAX_REPETITION = 0.25
MAX_SHARE = 0.6


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def stem(word: str) -> str:
    """A crude stem, enough to match 'dishes'/'dish' and 'borrowed'/'borrow'."""
    word = word.removesuffix("'s")
    for suffix in ("ing", "edly", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 2]


def grounded_words(source: str, answer: str) -> tuple[int, int]:
    """(grounded, counted): content words of the answer found in the source, and how many were counted."""
    known = {stem(w) for w in content_words(source)}
    counted = [w for w in content_words(answer) if w not in SUMMARY_WORDS]
    return sum(stem(w) in known for w in counted), len(counted)


def grounding(source: str, answer: str, counts: tuple[int, int] | None = None) -> float:
    """Share of the answer's content words that occur in the source (0..1; 0 for an answer with none)."""
    hits, counted = counts or grounded_words(source, answer)
    return hits / counted if counted else 0.0


def repetition(answer: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one (0 = none repeats, near 1 = a loop)."""
    tokens = words(answer)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def degenerate(source: str, answer: str, counts: tuple[int, int] | None = None) -> str:
    """Why the answer is no answer ("" when it is one): empty, too short, one word repeated, or chat filler."""
    tokens = words(answer)
    if not tokens:
        return "empty"
    if len(tokens) < MIN_WORDS:
        return "too short"
    top = Counter(tokens).most_common(1)[0][1]
    if len(tokens) >= 6 and top / len(tokens) > 0.4:
        return "one word repeated"
    if FILLER.search(answer) and (counts or grounded_words(source, answer))[0] < 3:
        return "chat filler"
    return ""


@dataclass
class Quality:
    """Every check for one answer, as stored in evaluation reports."""

    grounding: float
    repetition: float
    degenerate: str
    summary: bool
    reason: str  # why it is not a summary ("" when it is)


def assess(source: str, answer: str) -> Quality:
    """All checks at once, with the first reason the answer fails the summary rule."""
    counts = grounded_words(source, answer)  # the source is the longest text here: read it once
    broken = degenerate(source, answer, counts)
    reason, ground, rep = broken, grounding(source, answer, counts), repetition(answer)
    if not reason:
        if rep > MAX_REPETITION:
            reason = "repeats itself"
        elif counts[0] < MIN_GROUNDED_WORDS or ground < MIN_GROUNDING:
            reason = "not about the text"
        elif len(answer.strip()) > MAX_SHARE * len(source.strip()):
            reason = "not shorter than the text"
    return Quality(round(ground, 4), round(rep, 4), broken, not reason, reason)


def is_summary(source: str, answer: str) -> bool:
    return assess(source, answer).summary
