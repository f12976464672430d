"""The 'is a summary' rule and its parts, on answers a real tuned model wrote (hacked and honest)."""

import pytest

from grpo_app.quality import assess, degenerate, grounding, is_summary, repetition
from grpo_app.watch import hacking_warning

POST = (
    "I moved out of my apartment after four years and just got my deposit statement. The landlord is keeping "
    "650 dollars of my 1,200 deposit. The charges are for repainting the entire unit, replacing the carpet in "
    "the living room, and a general cleaning fee with no breakdown. I cleaned the place top to bottom and have "
    "photos. Is it worth taking him to small claims court?"
)

# Outputs of the length-only quick preset (lr 3e-4, no KL) on held-out texts: a rising reward, no summaries.
HACKED = [
    "Awesome!",
    "SUGGESTS",
    "SUGGESTSUPERBAD",
    "I'm sorry, but I'm sorry.",
    "SUBJECT: SUBJECT: SUBJECT: SUBJECT: SUBJECT: SUBJECT: SUBJECT: SUBJECT:",
    "You're a new AI, and you're not supposed to be here.",
    "Awesome, I'm glad I could help!",
    "",
    "   ",
]


@pytest.mark.parametrize("answer", HACKED)
def test_hacked_answers_are_never_summaries(answer):
    q = assess(POST, answer)
    assert not q.summary and q.reason


def test_honest_summaries_pass():
    for answer in (
        "The landlord is keeping 650 dollars of a 1,200 deposit for repainting and a new carpet.",
        "The author asks whether to take the landlord to small claims court over a withheld deposit.",
    ):
        q = assess(POST, answer)
        assert q.summary, (answer, q)
    # the lazy copy of the first line passed the rule of the last round; it is lead-1, not a summary
    lazy = assess(POST, "I moved out of my apartment after four years and just got my deposit statement.")
    assert not lazy.summary and lazy.reason == "copies the first sentence" and lazy.coverage == 0


def test_each_failure_has_its_reason():
    assert degenerate(POST, "") == "empty"
    assert degenerate(POST, "Awesome!") == "too short"
    assert degenerate(POST, "deposit deposit deposit deposit deposit deposit carpet") == "one word repeated"
    assert degenerate(POST, "Thank you so much, I hope this helps you a lot today.") == "chat filler"
    # pleasantries inside a grounded summary are not filler
    assert degenerate(POST, "Thanks to photos, the tenant may win back the 650 dollars of the deposit.") == ""
    assert assess(POST, "Quantum physics explains the behaviour of tiny particles.").reason == "not about the text"
    looped = "The landlord keeps the deposit and the landlord keeps the deposit and the landlord keeps the deposit."
    assert assess(POST, looped).reason == "repeats itself"
    assert assess(POST, POST).reason == "not shorter than the text"


def test_metric_values():
    assert grounding(POST, "landlord deposit carpet") == 1.0
    assert grounding(POST, "landlords carpets painting") == pytest.approx(2 / 3)  # crude stems match plurals
    assert grounding(POST, "Awesome!") == 0.0  # 'awesome' is a content word that the post lacks
    assert grounding(POST, "the author asks") == 0.0  # summary vocabulary only: nothing counted
    assert repetition("a b c a b c a b c") == pytest.approx(4 / 7)
    assert repetition("one two three four") == 0.0 and repetition("") == 0.0
    assert is_summary(POST, "The landlord kept 650 dollars of the deposit for paint and carpet.")


def _rows(reward, summary, grounding_, steps=12):
    return [
        {
            "step": i + 1,
            "reward": reward(i),
            "reward_std": 20.0,
            "rewards/summary/mean": summary(i),
            "rewards/grounding/mean": grounding_(i),
            "rewards/no_repeat/mean": 0.0,
        }
        for i in range(steps)
    ]


def test_hacking_warning_when_reward_rises_and_quality_falls():
    hacked = _rows(lambda i: -200 + 15 * i, lambda i: max(0.0, 0.6 - 0.06 * i), lambda i: 0.7 - 0.04 * i)
    text = hacking_warning(hacked)
    assert "Reward hacking" in text and "summaries from" in text and "grounding from" in text
    healthy = _rows(lambda i: -200 + 15 * i, lambda i: 0.5 + 0.03 * i, lambda i: 0.7)
    assert hacking_warning(healthy) == ""
    never = _rows(lambda i: -200 + 15 * i, lambda i: 0.05, lambda i: 0.1)  # quality never there: still gamed
    assert "only 5% of the latest completions are summaries" in hacking_warning(never)
    flat = _rows(lambda i: -100.0, lambda i: max(0.0, 0.6 - 0.06 * i), lambda i: 0.7)
    assert hacking_warning(flat) == ""  # quality falls but the reward does not rise: no gaming to report
    assert hacking_warning(hacked[:6]) == ""  # too early to tell


def test_title_gist_pays_for_what_the_title_says_not_for_the_title_alone():
    """title_gist: a summary that conveys the poster's title with the body's specifics scores high and passes the
    rule; the laziest answers that would max it, the title itself or the title with a word or two, score 0."""
    from grpo_app.quality import copied, title_gist

    title = "Landlord keeping $650 of my deposit for paint and an ancient carpet"
    post = f"SUBREDDIT: r/legaladvice\n\nTITLE: {title}\n\nPOST: {POST}"
    good = "My landlord is keeping $650 of my $1,200 deposit for paint and carpet; is small claims court worth it?"
    assert title_gist(post, good) >= 0.7 and is_summary(post, good)
    lazy = title
    assert copied(post, lazy) == "copies the title" and title_gist(post, lazy) == 0.0
    assert title_gist(post, f"TITLE: {title}") == title_gist(post, f"{title}, sadly.") == 0.0
    assert title_gist(post, "I cleaned the apartment and took photos before I moved out.") == 0.0
    assert title_gist(POST, good) == 0.0  # a plain text has no title: nothing to convey, no signal
    doc = "# Why volcanoes erupt\n\nMagma rises because it is lighter than the rock around it. Gas builds up."
    assert title_gist(doc, "Volcanoes erupt when light, gassy magma rises through heavier rock.") == 1.0
