"""Recognising a final answer that is really a question, and the options it offers."""

from __future__ import annotations

import pytest

from agentproxy.questions import looks_like_question, question_from_text

NUMBERED_CHOICE = """I looked at the project and there are two reasonable ways to add persistence.

1. SQLite (Recommended) - no server, one file
2. PostgreSQL - more setup, scales further

Which would you prefer?"""


@pytest.mark.parametrize(
    "text",
    [
        "Which framework should I use?",
        NUMBERED_CHOICE,
        "Should I use pytest or unittest?",
        "I found two config files.\n\nShould I use pytest or unittest?",
        "Which approach do you want, a rewrite or a patch?\nLet me know and I'll begin.",
        "The spec is ambiguous about time zones.\n\nShould timestamps be stored in UTC or local time?",
    ],
)
def test_questions_are_recognised(text: str) -> None:
    assert looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "I added the endpoint and its tests. All 42 tests pass.",
        "Done. Summary of changes:\n\n- app.py: new route\n- tests/test_app.py: two tests\n\nEverything passes.",
        "I implemented the parser and all tests pass.\n\nWould you like me to add tests for the edge cases?",
        "The refactor is complete.\n\nWant me to also update the README?",
        "Fixed the bug in utils.py.\n\nDo you want me to open a pull request?",
        "All done.\n\nLet me know if you'd like any changes?",
        "Implemented the CLI flag.\n\nShall I also add shell completion?",
        "I implemented the parser and all tests pass.\nWould you like me to add tests?",
        "Done. All 12 tests pass. Would you like me to add docs as well?",
        "",
        "   \n\n  ",
    ],
)
def test_reports_offers_and_empty_text_are_not_questions(text: str) -> None:
    assert not looks_like_question(text)


def test_a_question_buried_early_in_a_long_report_is_not_the_ending() -> None:
    text = "Why did this fail? Because of a typo.\n\n" + "Fixed it and re-ran the suite; everything passes.\n" * 3
    assert not looks_like_question(text)


def test_numbered_options_become_options_and_the_question_is_the_last_asking_line() -> None:
    question = question_from_text(NUMBERED_CHOICE)

    assert question.question == "Which would you prefer?"
    assert [option.label for option in question.options] == [
        "SQLite (Recommended) - no server, one file",
        "PostgreSQL - more setup, scales further",
    ]


@pytest.mark.parametrize(
    ("listing", "labels"),
    [
        ("1) Flask (Recommended)\n2) Django", ["Flask (Recommended)", "Django"]),
        ("a. Flask (Recommended)\nb. FastAPI\nc. Django", ["Flask (Recommended)", "FastAPI", "Django"]),
        ("A) Keep the API\nB) Break it", ["Keep the API", "Break it"]),
        ("- Flask (Recommended)\n- Django", ["Flask (Recommended)", "Django"]),
        ("* Flask\n* Django (Recommended)", ["Flask", "Django (Recommended)"]),
        ("• Flask\n• Django", ["Flask", "Django"]),
        ("1. **Flask (Recommended)**\n2. **Django**", ["Flask (Recommended)", "Django"]),
        ("1. **Flask** (Recommended) - small\n2. **Django** - big", ["Flask (Recommended) - small", "Django - big"]),
    ],
)
def test_list_items_become_options(listing: str, labels: list[str]) -> None:
    text = f"There are a few frameworks that fit.\n\n{listing}\n\nWhich framework should I use?"

    question = question_from_text(text)

    assert question.question == "Which framework should I use?"
    assert [option.label for option in question.options] == labels


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("Should I use pytest or unittest?", ["pytest", "unittest"]),
        ("The tests need a runner.\n\nShould I use pytest, or unittest?", ["pytest", "unittest"]),
        ("Do you want C++ or C#?", ["C++", "C#"]),
        ("Which config format: config.yaml or config.toml ?", ["config.yaml", "config.toml"]),
    ],
)
def test_either_or_questions_give_two_options(text: str, labels: list[str]) -> None:
    question = question_from_text(text)

    assert question.question == text.strip().splitlines()[-1].strip()
    assert [option.label for option in question.options] == labels


def test_an_open_question_has_no_options() -> None:
    question = question_from_text("I need the database URL.\n\nWhat should the connection string be?")

    assert question.question == "What should the connection string be?"
    assert question.options == []


def test_text_without_a_question_mark_uses_its_last_line() -> None:
    question = question_from_text("Some context.\nPlease confirm the target directory")
    assert question.question == "Please confirm the target directory"


def test_either_or_in_the_question_wins_over_a_summary_list_above_it() -> None:
    text = "Changed:\n- a.py\n- b.py\n\nShould I use pytest or unittest?"
    assert [option.label for option in question_from_text(text).options] == ["pytest", "unittest"]


def test_a_list_of_changed_files_is_not_a_set_of_options() -> None:
    text = "Changed:\n- a.py\n- src/b.py: new helper\n\nWhich database should I use?"
    question = question_from_text(text)
    assert question.question == "Which database should I use?"
    assert question.options == []


def test_a_list_after_the_question_is_its_options() -> None:
    question = question_from_text("Which would you prefer?\n1. Flask\n2. Django")
    assert [option.label for option in question.options] == ["Flask", "Django"]
