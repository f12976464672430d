"""How a text is laid out: the instruction before it, its title, heading and label lines, its body.

Users bring texts in several layouts: Reddit posts as the recipe's dataset has them (`SUBREDDIT: r/...`,
`TITLE: ...`, `POST: ...`), documents that open with a markdown heading (`# A long document about the Cat`),
e-mails with `Subject:` lines, and plain texts. A summariser that copies the first line of such a text copies
its title, and a cheap quality check must know which lines those are. `split_layout` finds them with a few
transparent rules (no model), and the trivial baselines of the evaluation (the title, the first sentence) come
from the same split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

# Labels that open a line of a structured text; the value after a BODY label is the text itself.
TITLE_LABELS = frozenset({"title", "subject", "headline", "heading", "re"})
BODY_LABELS = frozenset({"post", "text", "body", "content", "article", "document", "story", "message"})
OTHER_LABELS = frozenset(
    {"subreddit", "from", "to", "date", "topic", "category", "tags", "author", "by", "cc", "source", "section", "flair"}
)
LABEL_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z/_-]{0,15}(?: [A-Za-z]{1,15})?)\s*:\s*(.*)$")
HEADING_LINE = re.compile(r"^\s*#{1,6}\s+(.*?)\s*#*\s*$")
INSTRUCTION = re.compile(
    r"^\s*(please\s+)?(summari[sz]e|write|give|provide|condense|shorten|explain|describe|tl;?dr|read|"
    r"in one sentence|what is|what's)\b",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
MAX_TITLE_WORDS = 14
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")  # a word, as the quality checks count them (lowercased text)


@dataclass
class Layout:
    """A text split into what surrounds its content and the content itself."""

    instruction: str = ""  # an instruction paragraph put before the text ("Summarize this text in one sentence.")
    headers: list[tuple[str, str]] = field(default_factory=list)  # (kind, text): title | heading | label
    markers: list[str] = field(default_factory=list)  # the label markers the text uses: "TITLE:", "#", ...
    body: str = ""
    sentences: list[str] = field(default_factory=list)  # the body's sentences, in order
    _runs: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def title(self) -> str:
        """The text's title: its title line, else its first heading ("" for a plain text)."""
        for wanted in ("title", "heading"):
            for kind, text in self.headers:
                if kind == wanted and text:
                    return text
        return ""

    @property
    def lead(self) -> str:
        """The body's first sentence (lead-1)."""
        return self.sentences[0] if self.sentences else ""

    def word_runs(self, n: int) -> set[tuple[str, ...]]:
        """Every run of `n` consecutive words of the body (lowercased), to spot answers pasted from it."""
        if n not in self._runs:
            tokens = WORD.findall(self.body.lower())
            self._runs[n] = {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
        return self._runs[n]


def _label(line: str) -> tuple[str, str, str] | None:
    """(kind, marker, value) of a label line ("TITLE: Ugh" -> title), or None for an ordinary line."""
    m = LABEL_LINE.match(line)
    if not m:
        return None
    name, value = m.group(1), m.group(2).strip()
    key = name.lower()
    if key in TITLE_LABELS:
        return "title", f"{name}:", value
    if key in BODY_LABELS:
        return "body", f"{name}:", value
    if key in OTHER_LABELS or (name.isupper() and len(name) > 1):
        return "label", f"{name}:", value
    return None


def sentences(text: str) -> list[str]:
    """Sentences of a text: split at . ! ? before a capital or digit, and at line breaks."""
    out = []
    for block in re.split(r"\n\s*", text.strip()):
        out += [s.strip() for s in SENTENCE_END.split(block) if s.strip()]
    return out


def _looks_like_title(line: str, rest: str) -> bool:
    """A short first line without a final full stop, with more text after it: a title without a marker."""
    words = line.split()
    return (
        0 < len(words) <= MAX_TITLE_WORDS
        and not line.rstrip().endswith((".", ",", ";", ":"))
        and len(sentences(rest)) >= 2
    )


@lru_cache(maxsize=512)
def split_layout(text: str) -> Layout:
    """The instruction, the header lines (title, headings, labels) and the body of a text.

    Cached: a training step judges each prompt's group of completions against the same text (treat as read-only)."""
    out = Layout()
    text = str(text or "").replace("\r\n", "\n").strip()
    first, sep, rest = text.partition("\n\n")
    if sep and len(first) <= 200 and INSTRUCTION.match(first) and rest.strip():
        out.instruction, text = first.strip(), rest
    else:  # or asked after the text ("... \n\nSummarize the text above in one sentence.")
        rest, sep, last = text.rpartition("\n\n")
        if sep and len(last) <= 200 and INSTRUCTION.match(last) and rest.strip():
            out.instruction, text = last.strip(), rest
    lines = text.split("\n")
    body: list[str] = []
    in_header = True
    for i, line in enumerate(lines):
        stripped = line.strip()
        heading = HEADING_LINE.match(line)
        if heading:  # a markdown heading anywhere: a title of the text or of a section
            out.headers.append(("heading", heading.group(1).strip()))
            out.markers.append("#")
            continue
        if not in_header:
            body.append(line)
            continue
        if not stripped:
            continue
        label = _label(stripped)
        if label:
            kind, marker, value = label
            out.markers.append(marker)
            if kind == "body":
                in_header = False
                body.append(value)
            elif value:
                out.headers.append((kind, value))
            continue
        rest = "\n".join(lines[i + 1 :])
        if not out.headers and not body and _looks_like_title(stripped, rest):
            out.headers.append(("title", stripped))
            in_header = False
            continue
        in_header = False
        body.append(line)
    out.body = "\n".join(body).strip()
    out.sentences = sentences(out.body)
    return out


def strip_markers(answer: str, markers: list[str]) -> str:
    """The answer without leading label markers ("SUBREDDIT:", "TITLE:", "#") of the text it answers."""
    text = answer.strip()
    changed = True
    while changed and text:
        changed = False
        if text.startswith("#"):
            text, changed = text.lstrip("#").strip(), True
        for marker in markers:
            if marker != "#" and text.lower().startswith(marker.lower()):
                text, changed = text[len(marker) :].strip(), True
    return text
