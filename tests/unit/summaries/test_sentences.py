"""Sentence spans: what ends a sentence and what does not, offsets into the text as given."""

from __future__ import annotations

import pytest

from stream_aimass.summaries.sentences import split_sentences


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_terminal_punctuation_ends_a_sentence_and_offsets_point_into_the_text() -> None:
    text = "The vote passed. Was it close?  Yes! Turnout rose."
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "The vote passed.", "Was it close?", "Yes!", "Turnout rose.",
    ]  # fmt: skip
    assert all(0 <= s < e <= len(text) for s, e in spans)
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Amara Osei leads the team.",
        "Sales rose 3.5 percent to $4.2 billion.",
        "J. R. Hollis scored twice.",
        "Troops from the U.S. and the U.K. arrived.",
        "Apples, pears, etc. are on sale.",
        "It opened at 9 a.m. on Monday.",
    ],
)
def test_abbreviations_initials_and_decimals_end_nothing(text: str) -> None:
    assert sentences(text) == [text]


def test_quotes_and_brackets_after_the_stop_belong_to_the_sentence() -> None:
    text = 'She said "we won." Then she left. (The crowd cheered.) It rained.'
    assert sentences(text) == [
        'She said "we won."', "Then she left.", "(The crowd cheered.)", "It rained.",
    ]  # fmt: skip


def test_a_lower_case_word_after_a_stop_does_not_start_a_sentence() -> None:
    assert sentences("The fee is 2 p.m. sharp. ok then.") == ["The fee is 2 p.m. sharp. ok then."]


def test_paragraphs_and_lines_that_start_a_sentence_end_one() -> None:
    text = "Budget approved\nThe council voted 7-2 on Monday\n\nA second paragraph follows"
    assert sentences(text) == [
        "Budget approved", "The council voted 7-2 on Monday", "A second paragraph follows",
    ]  # fmt: skip


def test_a_wrapped_line_stays_one_sentence() -> None:
    text = "The council voted on the new\nbudget on Monday night."
    assert sentences(text) == [text]


@pytest.mark.parametrize("text", ["", "   ", "\n\n \n"])
def test_blank_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


def test_surrounding_white_space_is_left_out() -> None:
    text = "  First one.   Second one.  \n\n  Third one.  "
    assert sentences(text) == ["First one.", "Second one.", "Third one."]


def test_text_without_a_final_stop_is_still_a_sentence() -> None:
    assert sentences("A headline without a stop") == ["A headline without a stop"]
