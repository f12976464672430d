"""Is an answer a summary of its source? Cheap checks that need no extra model.

A rising reward can hide a broken model, and every cheap check is the next thing a model learns to game: a length
reward alone was maximised by "Awesome!" padded to 50 characters, and length + grounding by copying the text's title
line. These checks read the text the way a user would, roughly, and each names why an answer fails:

- `grounding`: the share of the answer's content words that occur in the source (a summary reuses the
  text's names and facts; an invented answer does not). Summary vocabulary ("author", "asks", "post")
  counts neither way, since a good summary of a first-person post needs it.
- `repetition`: the share of the answer's word 3-grams that repeat an earlier one ("the cat the cat ...").
- `degenerate`: why an answer is no answer at all (empty, too short, one word repeated, a list of words
  instead of a sentence, chat filler such as apologies or thanks instead of content), or "" when it is fine.
- `copied`: why an answer is a copy rather than a summary: the text's title, a heading or a label line (with or
  without its `TITLE:`/`#` marker, or a piece of one), the instruction echoed, or one sentence of the text
  lifted (nearly) word for word.
- `coverage`: how much of the body's content beyond its title and first sentence the answer carries (0..1): the
  first line copied scores 0, a sentence that joins the problem and the question scores high.
- `title_gist`: the share of the title's content words the answer conveys (0..1; 0 without a title, and 0 for a
  copy).
- `is_summary`: the rule the evaluation counts. An answer passes when it is not degenerate, repetition <= 0.25,
  it copies nothing (above), it has at least two grounded content words and grounding >= 0.5, it is shorter than
  the source (at most `MAX_SHARE` of its characters), and it carries something of the body beyond its first
  sentence. A short faithful sentence that joins two parts of the text passes; "Awesome!", the title, the
  heading, the instruction or the first sentence never do.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from .layout import WORD, Layout, split_layout, strip_markers

STOPWORDS = frozenset(
    "a an the and or but if then so of to in on at for with from by as is are was were be been being it its "
    "this that these those i you he she we they me my your our their his her them us do does did not no yes "
    "have has had will would can could should about into over after before just very really also than too "
    "i'm i've i'd it's he's she's they're we're you're don't doesn't didn't can't won't isn't wasn't there "
    "here what which who whom when where why how all any some more most other such only own same both each "
    "few many much one two out up down off again further once while because until within without between "
    "through during above below under now still even get got going make made may might must shall him himself "
    "herself myself yourself ourselves themselves itself every another nothing something anything everything gets "
    "getting".split()
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
MIN_GROUNDED_WORDS = 3  # distinct words of the text: 'My friend should not be my friend.' says nothing
MAX_REPETITION = 0.25
MAX_SHARE = 0.6
MIN_FUNCTION_SHARE = 0.1  # English sentences are a quarter or more function words; keyword lists have none
MAX_NOVEL_SHARE_OF_COPY = 1 / 3  # a header copy adds fewer new content words than this share (or fewer than 2)
SENTENCE_COPY = 0.9  # share of the answer's words that one source sentence holds, in order, for a lifted sentence
COPIED_RUN = 5  # words in a row taken from the text that count as pasted
COVERAGE_WORDS = 5  # a one-sentence summary that carries this many of the body's weightiest words covers it


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def stem(word: str) -> str:
    """A crude stem, enough to match 'dishes'/'dish', 'borrowed'/'borrow' and 'biking'/'bike'."""
    word = word.removesuffix("'s")
    for suffix in ("ings", "ing", "edly", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 2]


@lru_cache(maxsize=512)
def _known(source: str) -> frozenset[str]:
    """The stems of a source's content words (cached: a group of completions shares its source)."""
    return frozenset(stem(w) for w in content_words(source))


def grounded_words(source: str, answer: str) -> tuple[int, int]:
    """(grounded, counted): content words of the answer found in the source, and how many were counted."""
    known = _known(source)
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
    if len(tokens) >= 6 and _function_share(answer) < MIN_FUNCTION_SHARE:
        return "a list of words, not a sentence"
    return ""


def _function_share(answer: str) -> float:
    """Share of function words among the answer's words, names left out: a sentence, even a headline one
    ("Northfield Logistics approved a new van."), has some; a list of keywords has none."""
    raw = re.findall(r"[A-Za-z0-9]+(?:'[a-z]+)?", answer)
    rest = [w.lower() for i, w in enumerate(raw) if i == 0 or not w[0].isupper()]
    return sum(w in STOPWORDS for w in rest) / len(rest) if rest else 0.0


def _stems(text: str) -> set[str]:
    return {stem(w) for w in content_words(text) if w not in SUMMARY_WORDS}


def _common_subsequence(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two word lists."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


HEADER_REASONS = {"title": "copies the title", "heading": "copies a heading", "label": "copies a label"}


def copied(source: str, answer: str, layout: Layout | None = None) -> str:
    """Why the answer is a copy ("" when it is not): the title, a heading or a label line of the source (with or
    without its marker, whole or a piece), the instruction echoed, or one sentence of the text lifted."""
    layout = layout or split_layout(source)
    text = strip_markers(answer, layout.markers)
    tokens = words(text)
    if not tokens:
        return "copies a label" if answer.strip() and layout.markers else ""
    if layout.instruction:
        asked = set(words(layout.instruction))
        if sum(t in asked for t in tokens) / len(tokens) >= 0.8:
            return "echoes the instruction"
    mine = _stems(text)
    header_stems = [(kind, _stems(value)) for kind, value in layout.headers]
    if mine and header_stems:
        known = set().union(*(s for _, s in header_stems))
        novel = mine - known
        kind, best = max(header_stems, key=lambda h: len(h[1] & mine))
        if best & mine and (len(novel) < 2 or len(novel) / len(mine) < MAX_NOVEL_SHARE_OF_COPY):
            return HEADER_REASONS[kind]
    if text != answer.strip():
        return "copies a label"  # it opens with the source's own `TITLE:` / `#` marker
    if len(tokens) >= 4:
        needed, distinct = SENTENCE_COPY * len(tokens), set(tokens)
        for i, sentence in enumerate(layout.sentences):
            theirs = words(sentence)
            if (
                len(distinct & set(theirs)) >= SENTENCE_COPY * len(distinct)
                and _common_subsequence(tokens, theirs) >= needed
            ):
                return "copies the first sentence" if i == 0 else "copies a sentence of the text"
    if len(tokens) >= 2 * COPIED_RUN:  # several sentences, or pieces of them, pasted together
        runs, covered = layout.word_runs(COPIED_RUN), set()
        for i in range(len(tokens) - COPIED_RUN + 1):
            if tuple(tokens[i : i + COPIED_RUN]) in runs:
                covered.update(range(i, i + COPIED_RUN))
        if len(covered) >= SENTENCE_COPY * len(tokens):
            return "copies the text word for word"
    return ""


def coverage(source: str, answer: str, layout: Layout | None = None) -> float:
    """How much of the body's content beyond its title and first sentence the answer carries, 0..1.

    Each content word of the body that is not in the title, the headings or the first sentence weighs as often as
    the body uses it; the answer's score is the weight of the words it carries over the weight of the body's
    `COVERAGE_WORDS` heaviest (1.0 = as much as a sentence carrying the text's key words can)."""
    layout = layout or split_layout(source)
    opening = set().union(_stems(layout.lead), *(_stems(text) for _, text in layout.headers))
    rest = " ".join(layout.sentences[1:])
    weights = Counter(s for s in (stem(w) for w in content_words(rest) if w not in SUMMARY_WORDS) if s not in opening)
    if not weights:
        return 0.0
    best = sum(sorted(weights.values(), reverse=True)[:COVERAGE_WORDS])
    carried = sum(weights[s] for s in _stems(answer) if s in weights)
    return min(1.0, carried / best)


def title_gist(source: str, answer: str, layout: Layout | None = None) -> float:
    """Share of the title's content words (else the first heading's) that the answer conveys, 0..1; 0 for a text
    without one, and 0 for an answer that is a copy (`copied`): a poster's title says what the post is about, and a
    summary says it too, with more. Paired with `no_copy` alone it was gamed: a run (seed 42) copied 10 of 40 post
    titles where the preset copies 3-6."""
    layout = layout or split_layout(source)
    wanted = _stems(layout.title)
    if not wanted or copied(source, answer, layout):
        return 0.0
    return len(wanted & _stems(answer)) / len(wanted)


@dataclass
class Quality:
    """Every check for one answer, as stored in evaluation reports."""

    grounding: float
    repetition: float
    degenerate: str
    summary: bool
    reason: str  # why it is not a summary ("" when it is)
    copies: str = ""  # what it copies ("" when nothing)
    coverage: float = 0.0


def assess(source: str, answer: str) -> Quality:
    """All checks at once, with the first reason the answer fails the summary rule."""
    layout = split_layout(source)
    counts = grounded_words(source, answer)  # the source is the longest text here: read it once
    broken, copy = degenerate(source, answer, counts), copied(source, answer, layout)
    ground, rep, cover = grounding(source, answer, counts), repetition(answer), coverage(source, answer, layout)
    too_long = len(answer.strip()) > MAX_SHARE * len(source.strip())
    reason = "not shorter than the text" if too_long and not broken else copy or broken
    if not reason:
        if rep > MAX_REPETITION:
            reason = "repeats itself"
        elif len(_stems(answer) & _known(source)) < MIN_GROUNDED_WORDS or ground < MIN_GROUNDING:
            reason = "not about the text"
        elif cover == 0 and len(layout.sentences) > 1:
            reason = "nothing beyond the first sentence"
    return Quality(round(ground, 4), round(rep, 4), broken, not reason, reason, copy, round(cover, 4))


def is_summary(source: str, answer: str) -> bool:
    return assess(source, answer).summary
