"""The ContextKeeper writes events in batches: in order, redacted, all of them by the time a request is answered
or the actor has stopped, and with one flush of the views per batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentproxy.actors.base import Directory
from agentproxy.actors.context_keeper import ContextKeeper

from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import (
    AgentQuestion,
    AgentSaid,
    Event,
    GetContext,
    Notice,
    OpenSession,
    Option,
    QuestionAsked,
    Record,
    to_json,
)
from agentproxy.redact import REDACTED, Redactor
from agentproxy.store import SessionStore

SECRET = "sk-test-0123456789abcdef"
ESCAPED_IN_JSON = 'a "pass\\word"\nof two lines'  # a .env value may hold quotes, backslashes, newlines
REDACTOR = Redactor([SECRET, ESCAPED_IN_JSON])


class Recorder:
    """A view that keeps what it is shown; the first event can be held, so that the mailbox fills meanwhile."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.flushes = 0
        self.release = threading.Event()
        self.release.set()

    def __call__(self, event: Event) -> None:
        self.release.wait(timeout=10)
        self.events.append(event)

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[tuple[object, Recorder, Path]]:
    view = Recorder()
    store_path = tmp_path / "store.db"
    ref = ContextKeeper.start("context_keeper", Directory(), store_path, [view], KnowledgeBoard(), REDACTOR)
    yield ref, view, store_path
    ref.stop()


def stored(store_path: Path, session_id: str) -> list[Event]:
    with SessionStore(store_path) as store:
        return list(store.events(session_id))


def test_a_flood_is_stored_and_shown_in_order_with_few_flushes(keeper, tmp_path: Path) -> None:
    ref, view, store_path = keeper
    session_id = ref.ask(OpenSession(task="t", working_dir=str(tmp_path)))
    view.release.clear()  # the first event holds the keeper: the rest queue up behind it
    texts = [f"line {n}" for n in range(500)]
    for text in texts:
        ref.tell(Record(event=AgentSaid(subtask_id="1", text=text)))
    view.release.set()
    ref.ask(GetContext(working_dir=str(tmp_path)))  # answered only once every event before it is written
    recorded = stored(store_path, session_id)
    assert [getattr(e, "text", type(e).__name__) for e in recorded] == [*texts, "ContextLoaded"]
    assert view.events == recorded
    assert view.flushes < 50  # batches, not one flush per event


def test_stopping_writes_what_is_still_waiting(keeper, tmp_path: Path) -> None:
    ref, view, store_path = keeper
    session_id = ref.ask(OpenSession(task="t", working_dir=str(tmp_path)))
    view.release.clear()
    for n in range(50):
        ref.tell(Record(event=Notice(text=f"notice {n}")))
    view.release.set()
    ref.stop()
    assert len(stored(store_path, session_id)) == 50 and len(view.events) == 50


@pytest.mark.parametrize(
    "event",
    [
        AgentSaid(subtask_id="1", text=f"the key is {SECRET}"),
        AgentSaid(subtask_id="1", text=f'a "quoted"\nkey {SECRET}\\n on two lines'),  # escaped in JSON
        AgentSaid(subtask_id="1", text=f"the password is {ESCAPED_IN_JSON}."),
        QuestionAsked(
            subtask_id="1",
            questions=[AgentQuestion(question="Which key?", options=[Option(label=SECRET, description="x")])],
        ),
    ],
)
def test_no_secret_reaches_the_store_or_the_view(keeper, tmp_path: Path, event: Event) -> None:
    ref, view, store_path = keeper
    session_id = ref.ask(OpenSession(task="t", working_dir=str(tmp_path)))
    clean = AgentSaid(subtask_id="1", text='no secret, but "quotes"\nand lines')
    ref.tell(Record(event=event))
    ref.tell(Record(event=clean))
    ref.stop()
    shown = view.events
    assert [type(e) for e in shown] == [type(event), AgentSaid]
    assert shown == stored(store_path, session_id)
    assert all(REDACTOR.redact_struct(e) == e for e in shown)  # nothing left to redact
    assert REDACTED in to_json(shown[0]).decode()
    assert shown[1].text == clean.text
