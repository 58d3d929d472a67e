"""The guard of the members stage without Spark: does a near copy of a flagged page still hold the flagged passage?"""

from __future__ import annotations

from pipelines.stages.members import guard_text
from udfs.passages import held_sentences

PAGE = (
    "The council met on Monday to discuss the new bus timetable for the northern estates. "
    "Several residents asked for an earlier first service on weekdays. "
    "Next time I see that councillor I will smash his skull in with a hammer and leave him in the gutter. "
    "The transport officer promised a consultation before the summer."
)
PASSAGE = "Next time I see that councillor I will smash his skull in with a hammer and leave him in the gutter."


def _sentence_of(text: str, ranges: list[tuple[int, int]]) -> list[str]:
    return [text[s:e] for s, e in ranges]


def test_a_copy_with_the_passage_reworded_and_reordered_still_holds_it() -> None:
    copy = (
        "On Monday the council met to discuss the new bus timetable for the northern estates. "
        "Several residents asked for an earlier first weekday service. "
        "I will smash that councillor's skull in with a hammer next time I see him, and leave him in the gutter. "
        "The transport officer promised a consultation before summer."
    )
    assert _sentence_of(copy, held_sentences(copy, [PASSAGE])) == [
        "I will smash that councillor's skull in with a hammer next time I see him, and leave him in the gutter."
    ]


def test_a_passage_split_in_two_sentences_by_the_copy_is_held_by_both() -> None:
    copy = PAGE.replace("with a hammer and leave", "with a hammer. And then I will leave")
    got = _sentence_of(copy, held_sentences(copy, [PASSAGE]))
    assert got == [
        "Next time I see that councillor I will smash his skull in with a hammer.",
        "And then I will leave him in the gutter.",
    ]


def test_a_copy_without_the_passage_holds_nothing_though_it_shares_words_with_it() -> None:
    # the same page with the threat gone; a clean sentence that shares some of its words stays
    copy = PAGE.replace(PASSAGE, "Next time the councillor visits he will see the gutter repairs on the high street.")
    assert held_sentences(copy, [PASSAGE]) == []


def test_a_short_passage_is_held_only_whole_and_in_a_short_sentence() -> None:
    assert held_sentences("Some news today. Kill them all. More news.", ["Kill them all!"]) == [(17, 31)]
    long_one = "All " + " ".join(["news"] * 60) + " kill them."
    assert held_sentences(long_one, ["Kill them all!"]) == []
    assert held_sentences("Some news today. Kill the lights. More news.", ["Kill them all!"]) == []


def _passages(drop: bool) -> list[dict[str, object]]:
    start = PAGE.index(PASSAGE)
    return [{"principle": "violence", "drop": drop, "spans": [{"start": start, "end": start + len(PASSAGE)}]}]


def test_a_copy_holding_a_passage_the_page_was_dropped_for_is_dropped_for_it() -> None:
    assert guard_text(PAGE, PAGE, _passages(drop=True), 0.5) == (["violence"], [], PAGE)


def test_a_copy_holding_a_passage_the_page_was_to_be_revised_for_loses_the_passage() -> None:
    held, cut, text = guard_text(PAGE, PAGE, _passages(drop=False), 0.5)
    assert (held, cut) == ([], ["violence"])
    assert text == PAGE.replace(PASSAGE + " ", "")


def test_a_cut_that_leaves_too_little_drops_the_copy_instead() -> None:
    assert guard_text(PAGE, PAGE, _passages(drop=False), 0.9) == (["violence"], [], PAGE)


def test_a_page_with_no_passage_to_look_for_leaves_the_copy_alone() -> None:
    assert guard_text(PAGE, PAGE, None, 0.5) == ([], [], PAGE)
    assert guard_text(PAGE, PAGE, [{"principle": "violence", "drop": True, "spans": []}], 0.5) == ([], [], PAGE)
