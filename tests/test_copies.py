"""Summaries, not titles: the rule fails every copy a tuned model was seen to make and passes honest answers.

The hacked answers are those the quick preset of the last round wrote on texts it never saw (issue #18); the
sources are written for this test in the layouts users bring: Reddit posts (SUBREDDIT / TITLE / POST), documents
that open with a markdown heading, and plain texts.
"""

import pytest

from grpo_app.data import ASSETS
from grpo_app.layout import split_layout
from grpo_app.quality import assess, copied, coverage
from grpo_app.references import baseline_answers, reference_column, rouge_scores

ASK = "Summarize this text in one sentence.\n\n"


def reddit(subreddit: str, title: str, post: str) -> str:
    return f"{ASK}SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}"


BIKE = reddit(
    "bicycling",
    "Commuting by bike through winter, is it worth it?",
    "I have been cycling the 9 km to work since April and I love it: I save about 80 dollars a month on "
    "bus fares and I feel fitter than I have in years. Now the days are getting shorter and colder, and my "
    "coworkers say I am crazy to keep going through December. The route is mostly a bike lane, but one "
    "stretch along the river gets icy. I would need lights, a proper jacket and maybe studded tyres, about "
    "250 dollars in all. Is it worth it, or should I take the bus until spring?",
)
LOAN = reddit(
    "personalfinance",
    "Pay off car loan early or build savings?",
    "I am 27 and have 6,000 dollars left on a car loan at 4.9% interest. I just got a raise and now have "
    "about 700 dollars a month spare. My emergency fund is only 1,500 dollars, which would not cover one "
    "month of rent if I lost my job. My dad says debt is debt and I should kill the loan as fast as "
    "possible. A coworker says the rate is low and I should build three months of savings first. Which "
    "makes more sense?",
)
KNEE = reddit(
    "running",
    "knee pain after increasing mileage",
    "Over the last month I went from 20 to 45 km a week to train for my first half marathon in March. Two "
    "weeks ago a dull ache started on the outside of my right knee, and now it hurts after about 5 km "
    "and on stairs. I have not changed shoes in 900 km. Should I rest completely, see a physio, or just "
    "cut back the mileage and keep running?",
)
TODDLER = reddit(
    "Parenting",
    "Toddler refuses to sleep in their own bed",
    "Our daughter is two and a half. Since we moved house in June she will not fall asleep anywhere but "
    "our bed, and if we carry her to her room she wakes up screaming within minutes. We have tried a "
    "night light, her old blanket and sitting by her bed until she sleeps, which takes over an hour. "
    "My partner and I are exhausted and barely sleep ourselves. How did you get your toddler back into "
    "her own room?",
)
LIGHTHOUSES = (
    ASK + "# Lighthouses of the Northern Coast\n\nSeven lighthouses still stand along the northern coast, "
    "the oldest built in 1791 from granite hauled by ox cart. For two centuries keepers trimmed the wicks "
    "and wound the clockwork that turned the lenses every night. The last keeper left in 1989, when the "
    "lights were automated and switched to electric lamps. Today three of the towers are museums, two "
    "are holiday cottages, and the rest are closed to the public. A local trust is raising 400,000 "
    "pounds to repair the storm-damaged tower at Carrick Point before it is lost to the sea."
)
VOLCANOES = (
    ASK + "# Why volcanoes erupt\n\nA volcano erupts when molten rock, called magma, rises from deep "
    "underground and escapes through the crust. Magma forms where the mantle melts, mostly at plate "
    "boundaries and above hot spots. Because it is lighter than the solid rock around it, magma rises and "
    "collects in chambers a few kilometres down. Gases dissolved in it, mostly water vapour and carbon "
    "dioxide, come out of solution as the pressure drops, like bubbles in an opened bottle of soda. Thick, "
    "sticky magma traps the gas until it bursts out explosively, while runny magma lets it escape and "
    "flows out as lava."
)
CAT = ASK + (ASSETS / "cat_document.txt").read_text()

# What the last round's quick preset wrote (issue #18), each with the text it was asked to summarise.
HACKED = [
    (BIKE, "SUBREDDIT: Commuting by bike through winter, is it worth it?", "copies the title"),
    (LOAN, "SUBREDDIT: Pay off car loan early or build savings?", "copies the title"),
    (KNEE, "SUBREDDIT: knee pain after increasing mileage", "copies the title"),
    (TODDLER, "Toddler refuses to sleep in their own bed", "copies the title"),
    (TODDLER, "TITLE: Toddler refuses to sleep in their own bed.", "copies the title"),
    (BIKE, "Commuting by bike through winter", "copies the title"),  # a piece of the title
    (BIKE, "SUBREDDIT: r/bicycling", "copies a label"),
    (LIGHTHOUSES, "# Lighthouses of the Northern Coast", "copies a heading"),
    (LIGHTHOUSES, "Lighthouses of the Northern Coast.", "copies a heading"),
    (VOLCANOES, "# Why volcanoes erupt", "copies a heading"),
    (CAT, "# A long document about the Cat", "copies a heading"),
    (CAT, "A long document about the cat.", "copies a heading"),
    (BIKE, "Summarize this text in one sentence", "echoes the instruction"),
    (CAT, "Summarize this text in one sentence.", "echoes the instruction"),
    # the first sentence, whole or cut: lead-1 is a baseline, not a summary
    (BIKE, "I have been cycling the 9 km to work since April and I love it.", "copies the first sentence"),
    (BIKE, "I have been cycling to work since April and I love it.", "copies the first sentence"),
    (
        CAT,
        "The domestic cat, known scientifically as Felis catus, is a small carnivorous mammal.",
        "copies the first sentence",
    ),
    (
        KNEE,
        "Should I rest completely, see a physio, or just cut back the mileage and keep running?",
        "copies a sentence of the text",
    ),
    (
        LIGHTHOUSES,
        "The last keeper left in 1989, when the lights were automated. A local trust is raising 400,000 "
        "pounds to repair the storm-damaged tower",
        "copies the text word for word",
    ),  # pieces pasted
]

# Answers a careful person would accept, in every layout (each joins two parts of the text).
HONEST = [
    (BIKE, "I cycle 9 km to work but winter is coming; are lights, a jacket and studded tyres worth 250 dollars?"),
    (BIKE, "Should I keep cycling to work through the icy winter or take the bus until spring?"),
    (LOAN, "With a 6,000 dollar car loan and only 1,500 in savings, should I pay the loan or build an emergency fund?"),
    (KNEE, "My knee started aching after I doubled my weekly mileage; should I rest or see a physio?"),
    (TODDLER, "Since our move my toddler will only sleep in our bed and we are exhausted; how do we change that?"),
    (
        LIGHTHOUSES,
        "The northern coast's seven lighthouses were automated in 1989 and a trust is raising money to save one.",
    ),
    (VOLCANOES, "Volcanoes erupt when rising magma releases its dissolved gases, explosively if the magma is thick."),
    (CAT, "Cats descend from the African wildcat and began living with people around farming villages."),
    (CAT, "The domestic cat is a small hunter that descends from the African wildcat."),
]


@pytest.mark.parametrize(("source", "answer", "reason"), HACKED)
def test_copies_are_not_summaries(source, answer, reason):
    q = assess(source, answer)
    assert not q.summary and q.reason == reason and q.copies == reason, q


@pytest.mark.parametrize(("source", "answer"), HONEST)
def test_honest_summaries_pass_in_every_layout(source, answer):
    q = assess(source, answer)
    assert q.summary and not q.copies and q.coverage > 0, q


def test_lazy_answers_that_dodge_the_copy_checks_still_fail():
    """The laziest answers that pass the copy checks: a keyword list, the title wrapped in summary words, the
    title plus one word, a paraphrase of the opening only, a label marker before an honest answer."""
    cases = {
        "bike winter ice tyres jacket lights bus spring": "a list of words, not a sentence",
        "The author describes commuting by bike through winter.": "copies the title",
        "Commuting by bike through the winter, is it really worth it?": "copies the title",
        "Since April I have been riding my bicycle to my job.": "nothing beyond the first sentence",
        "TITLE: should I cycle through the icy winter or take the bus?": "copies a label",
        "My coworkers should not be my coworkers.": "not about the text",  # vague: fewer than 3 words of the text
    }
    for answer, reason in cases.items():
        assert assess(BIKE, answer).reason == reason, (answer, assess(BIKE, answer))


def test_coverage_scores_the_body_beyond_its_opening():
    first_line = "I have been cycling the 9 km to work since April and I love it."
    joined = "I cycle to work but the river path gets icy; are studded tyres and lights worth 250 dollars?"
    assert coverage(BIKE, first_line) == 0
    assert coverage(BIKE, "Commuting by bike through winter, is it worth it?") == 0  # the title carries nothing new
    assert coverage(BIKE, joined) >= 0.6 > coverage(BIKE, "I cycle to work and the river path gets icy.")
    assert 0 <= coverage(CAT, "Cats hunt mice.") <= 1


def test_layouts_are_split_into_title_labels_and_body():
    post = split_layout(BIKE)
    assert post.instruction == "Summarize this text in one sentence."
    assert post.headers == [("label", "r/bicycling"), ("title", "Commuting by bike through winter, is it worth it?")]
    assert post.title == "Commuting by bike through winter, is it worth it?" and post.body.startswith("I have been")
    assert (
        post.lead == "I have been cycling the 9 km to work since April and I love it: I save about 80 dollars a "
        "month on bus fares and I feel fitter than I have in years."
    )
    doc = split_layout(CAT)
    assert doc.title == "A long document about the Cat" and doc.body.startswith("The domestic cat")
    titled = split_layout("Lighthouses of the Northern Coast\n\n" + LIGHTHOUSES.split("\n\n", 2)[2])
    assert titled.title == "Lighthouses of the Northern Coast" and titled.body.startswith("Seven lighthouses")
    mail = split_layout(
        "Subject: Office move on Friday\nFrom: Dana\n\nHi all, we move on Friday. Pack your desks. "
        "The vans come at nine."
    )
    assert mail.title == "Office move on Friday" and ("label", "Dana") in mail.headers
    plain = split_layout("My dog pulls on the leash. It hurts my shoulder. What works?")
    assert plain.title == "" and plain.headers == [] and len(plain.sentences) == 3
    assert copied(plain.body, "My dog pulls on the leash and hurts my shoulder; what training works?") == ""


def test_baselines_and_rouge():
    title, lead = (baseline_answers([BIKE.removeprefix(ASK)])[k][0] for k in ("title", "lead"))
    assert title == "Commuting by bike through winter, is it worth it?" and lead.startswith("I have been cycling")
    scores = rouge_scores(["the cat sat on the mat", "a b"], ["the cat sat on the mat", ""])
    assert scores["rougeL"] == [1.0, 0.0] and scores["rouge1"][0] == 1.0
    partial = rouge_scores(["my landlord kept my deposit"], ["landlord kept the deposit"])
    assert 0 < partial["rouge2"][0] < partial["rouge1"][0] < 1
    assert reference_column(["prompt", "summary"]) == "summary" and reference_column(["prompt"]) is None


def test_every_bundled_heldout_text_has_a_reference_the_rule_accepts():
    import json

    from grpo_app.evaluation import HELDOUT

    seen = 0
    for name, path in HELDOUT.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            ref = row["reference"]
            assert 0 < len(ref) <= 120 and ref.rstrip()[-1] in ".?!", (name, ref)
            layout = split_layout(row["prompt"])
            assert bool(layout.title) == (name != "plain"), (name, row["prompt"][:80])
        passing = sum(assess(ASK + r["prompt"], r["reference"]).summary for r in rows)
        assert passing >= len(rows) - 1, name  # one plain reference paraphrases too freely for grounding
        seen += len(rows)
    assert seen == 76


def test_hacking_warning_when_the_reward_rises_while_copies_rise():
    from grpo_app.watch import hacking_warning

    rows = [
        {
            "step": i + 1,
            "reward": -100 + 10 * i,
            "reward_std": 20.0,
            "rewards/summary/mean": 0.5,
            "rewards/no_copy/mean": -min(0.9, 0.08 * i),
        }
        for i in range(12)
    ]
    text = hacking_warning(rows)
    assert "Reward hacking" in text and "copies (the title, a heading, a sentence) from" in text and "rose" in text
    steady = [{**r, "rewards/no_copy/mean": -0.05} for r in rows]
    assert hacking_warning(steady) == ""
