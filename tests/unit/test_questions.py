"""Recognising a final answer that is really a question, and the options it offers."""

from __future__ import annotations

import json
from pathlib import Path

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


# --- the detector on the project's own labelled corpus ---------------------------------------------

CORPUS = Path(__file__).parents[1] / "data" / "final_answers.jsonl"


def test_the_corpus_is_large_and_balanced() -> None:
    labels = [json.loads(line)["label"] for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    assert len(labels) >= 100
    assert 0.4 <= labels.count("question") / len(labels) <= 0.6


@pytest.mark.parametrize("use_made_changes", [True, False], ids=["made_changes-given", "made_changes-unknown"])
def test_precision_and_recall_on_the_corpus(use_made_changes: bool) -> None:
    items = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    predicted = [
        looks_like_question(item["text"], made_changes=item["made_changes"] if use_made_changes else None)
        for item in items
    ]
    actual = [item["label"] == "question" for item in items]
    true_pos = sum(p and a for p, a in zip(predicted, actual, strict=True))
    precision = true_pos / max(1, sum(predicted))
    recall = true_pos / sum(actual)
    wrong = "\n".join(
        f"  {item['label']}: {' '.join(item['text'].split())[:100]!r} ({item['note']})"
        for item, p, a in zip(items, predicted, actual, strict=True)
        if p != a
    )
    assert precision >= 0.85 and recall >= 0.90, (
        f"precision {precision:.2f} recall {recall:.2f}; misclassified:\n{wrong}"
    )


# --- each cue --------------------------------------------------------------------------------------

PLAN = "## Plan\n\n1. Split `db.py` into `models.py` and `queries.py`\n2. Update the imports\n\n"


@pytest.mark.parametrize(
    "text",
    [
        "I can't reach the staging database. Please provide the connection string.",
        "Tell me which of the two layouts to keep and I'll delete the other.",
        "Let me know once the API key is in `.env`, then I can run the import.",
        "I need you to create the bucket first; I don't have the permissions.",
        "Waiting for your go-ahead before I touch production.",
        "Both are reasonable. Your call.",
    ],
    ids=["please-provide", "tell-me-which", "let-me-know-once", "i-need-you-to", "waiting-for-you", "your-call"],
)
def test_requests_without_a_question_mark_are_questions(text: str) -> None:
    assert looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "Which should I use, SQLite or Postgres? I'd pick SQLite: it needs no server.",
        "Should the cache be per user or global?\n\n**Summary:** the cache layer is written; only its scope is open.",
        "Do you want a rewrite or a patch? If you're unsure, I'll default to the patch.",
        "Options:\n\n1. Keep the flag\n2. Remove it\n\nWhich one? I'd go with 2, it is dead code.",
    ],
    ids=["recommendation-after", "summary-after", "default-after", "options-then-recommendation"],
)
def test_a_question_followed_by_more_text_is_still_a_question(text: str) -> None:
    assert looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "Added the endpoint; tests pass. Anything else you need?",
        "Fixed the import cycle. If you want, I can also add a lint rule against it.",
        "Updated the docs. Let me know if you'd like more examples!",
        "Try it now. If it still fails, could you tell me which browser you use?",
        "I've committed the fix. Would you like me to push it?",
        "I've added the flag. Would you like me to also document it?",
    ],
    ids=["anything-else", "if-you-want-i-can", "let-me-know-if", "if-it-still-fails", "offer-to-push", "also"],
)
def test_offers_and_conditional_follow_ups_are_reports(text: str) -> None:
    assert not looks_like_question(text)


@pytest.mark.parametrize(
    "text",
    [
        'I added an FAQ entry that answers "How do I reset my password?" with a link.',
        'The mapper now uses `user?.name ?: "unknown"`; the crash is gone.',
        "Deployed to https://staging.example.com/?v=2 and the health check passes.",
        "Why was it slow? The cache key included a timestamp. I removed it; builds take 9s now.",
    ],
    ids=["quoted", "inline-code", "url", "rhetorical"],
)
def test_a_question_mark_that_is_not_an_ask_is_ignored(text: str) -> None:
    assert not looks_like_question(text)


@pytest.mark.parametrize(
    ("made_changes", "expected"),
    [(False, True), (None, True), (True, False)],
    ids=["plan-only", "unknown", "after-work"],
)
def test_made_changes_decides_a_bare_proceed(made_changes: bool | None, expected: bool) -> None:
    assert looks_like_question("Would you like me to proceed?", made_changes=made_changes) is expected


def test_a_proceed_after_a_plan_is_a_question_and_after_completed_work_an_offer() -> None:
    assert looks_like_question(PLAN + "Would you like me to proceed?")
    assert not looks_like_question(
        "I split `db.py` and all 40 tests pass.\n\nWould you like me to proceed with the docs?"
    )


def test_completion_statements_turn_a_yes_no_question_into_an_offer_when_made_changes_is_unknown() -> None:
    question = "Want me to make the limit configurable?"
    assert looks_like_question("The limit is hard-coded at 100. " + question)
    assert not looks_like_question("I capped the set at 100 entries; memory is flat now. " + question)


def test_a_decision_is_a_question_even_after_changes() -> None:
    text = "I've written the parser. Should errors abort the import, or skip the row?"
    assert looks_like_question(text, made_changes=True)


# --- the question and its options ------------------------------------------------------------------


def test_lettered_options_inside_the_question() -> None:
    question = question_from_text("Should old logs be **(A)** archived (moved to `archive/`) or **(B)** deleted?")
    assert [option.label for option in question.options] == ["archived (moved to `archive/`)", "deleted"]


def test_bold_alternatives_inside_the_question() -> None:
    question = question_from_text("One question: should I **keep the old imports** working, or do a **hard cutover**?")
    assert [option.label for option in question.options] == ["keep the old imports", "hard cutover"]


def test_a_menu_above_a_request_gives_the_options() -> None:
    text = (
        "Would you like me to:\n\n1. Fix the test\n2. Fix the code\n3. Something else?\n\n"
        "Please let me know how you'd like to proceed."
    )
    question = question_from_text(text)
    assert question.question == "Please let me know how you'd like to proceed."
    assert [option.label for option in question.options] == ["Fix the test", "Fix the code", "Something else?"]


def test_plan_steps_above_a_go_ahead_are_not_options() -> None:
    question = question_from_text(PLAN + "Would you like me to proceed?")
    assert question.question == "Would you like me to proceed?"
    assert question.options == []


def test_the_question_is_the_ask_not_a_later_recommendation_or_a_yes_no_bullet() -> None:
    text = "Would you like to clear the context first? (Recommended)\n\n- **Yes:** run `/clear`\n- **No:** I'll go on"
    question = question_from_text(text)
    assert question.question == "Would you like to clear the context first? (Recommended)"
    assert [option.label for option in question.options] == ["Yes: run `/clear`", "No: I'll go on"]
    recommended = question_from_text("Which approach would you prefer? I'd recommend the first.")
    assert recommended.question == "Which approach would you prefer?"


def test_listed_sub_questions_are_part_of_the_question() -> None:
    question = question_from_text("Questions before I start:\n1. Is the input UTF-8?\n2. Can rows span lines?")
    assert question.question == "Questions before I start:\nIs the input UTF-8?\nCan rows span lines?"
    assert question.options == []


def test_if_so_brings_the_question_it_depends_on() -> None:
    question = question_from_text("Do you want me to install the APK? If so, please provide its path.")
    assert question.question == "Do you want me to install the APK? If so, please provide its path."
