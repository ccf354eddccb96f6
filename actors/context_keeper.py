"""ContextKeeper: owns the session store and what the brain knows; records and fans out events."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from agentproxy.actors.base import Directory, SupervisedActor, tell_quietly

from agentproxy.context import load_project_context
from agentproxy.history import summarise_session
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import (
    BrainCalled,
    ContextLoaded,
    Event,
    GetContext,
    OpenSession,
    PlanMade,
    QuestionAnswered,
    Record,
    RecordAll,
    SessionFinished,
    to_json,
)
from agentproxy.redact import Redactor
from agentproxy.store import SessionStore

log = logging.getLogger("agentproxy.actors")

Subscriber = Callable[[Event], None]
HISTORY_SESSIONS = 5
# How long an event waits for the rest of its batch: unseen by a person, hundreds of events in a flood.
FLUSH_AFTER_S = 0.05


class FlushDue:
    """The batch timer -> the ContextKeeper: write the events waiting."""


FLUSH_DUE = FlushDue()


class ContextKeeper(SupervisedActor):
    """Runs on its own thread; the only writer of the store and of the knowledge board.

    Events are written in batches: one transaction for all that arrived within FLUSH_AFTER_S, then
    the subscribers, one event at a time, in order; a subscriber that raises is logged and skipped.
    A batch is also written before any request is answered, and on stop. Every event passes the run's
    redactor first: the store and the subscribers never see a secret.
    """

    def __init__(
        self,
        name: str,
        directory: Directory,
        store_path: Path,
        subscribers: Sequence[Subscriber],
        board: KnowledgeBoard,
        redactor: Redactor,
    ) -> None:
        super().__init__(name, directory)
        self.store_path = store_path
        self.subscribers = list(subscribers)
        # Views buffer their output; flushed once per batch, not once per line.
        self.flushes = [flush for s in self.subscribers if callable(flush := getattr(s, "flush", None))]
        self.board = board
        self.redactor = redactor
        self.store: SessionStore | None = None
        self.session_id = ""
        self.brain_cost_usd = 0.0
        self.batch: list[Event] = []
        self.finished = False  # SessionFinished was recorded: nothing after it is
        self.timer: threading.Timer | None = None

    def on_start(self) -> None:
        self.store = SessionStore(self.store_path)

    def on_stop(self) -> None:
        timer = self.timer
        try:
            self.flush()
        finally:
            if timer is not None:
                timer.join()  # cancelled by the flush: no thread of the run outlives it
            super().on_stop()

    def release(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Record | RecordAll):
            self.flush()  # a request sees every event told before it
        match message:
            case Record(event=event):
                self.on_record(event)
            case RecordAll(events=events):
                for event in events:
                    self.on_record(event)
            case OpenSession():
                return self.on_open_session(message)
            case GetContext():
                return self.on_get_context(message)
        return None  # FLUSH_DUE: flushed above

    def on_open_session(self, request: OpenSession) -> str:
        assert self.store is not None
        task = self.redactor.redact(request.task)
        if request.continue_session:
            self.session_id = self.store.get(request.continue_session).id
            self.store.add_task(self.session_id, task)
        else:
            self.session_id = self.store.create_session(task, request.working_dir, request.screenshots)
        return self.session_id

    def on_get_context(self, request: GetContext) -> list[str]:
        assert self.store is not None
        # A continued session's own summary so far is history too; a new one has none yet.
        history = self.store.recent_summaries(request.working_dir, limit=HISTORY_SESSIONS)
        context = load_project_context(
            Path(request.working_dir),
            context_dir=Path(request.context_dir) if request.context_dir else None,
            screenshots=[Path(p) for p in request.screenshots],
            history=history,
        )
        self.board.update(project=context)
        chars = sum(len(document.text) for document in context.documents)
        self.on_record(ContextLoaded(sources=list(context.sources), chars=chars, images=len(context.images)))
        self.flush()
        return list(context.sources)

    def on_record(self, event: Event) -> None:
        if self.finished:
            log.debug("not recorded, the session has finished: %s", type(event).__name__)
            return  # SessionFinished is a run's last word: a straggler (a killed check's result) comes too late
        event = self.redacted(event)
        match event:
            case PlanMade(plan=plan):
                self.board.update(plan=plan)
            case QuestionAnswered(answers=answers):
                for question, answer in answers.items():
                    self.board.add_exchange(question, answer)
            case BrainCalled(cost_usd=cost):
                self.brain_cost_usd += cost
            case SessionFinished():
                event = msgspec.structs.replace(event, brain_cost_usd=round(self.brain_cost_usd, 6))
                self.finished = True
        if not event.session_id or not event.at:
            event = msgspec.structs.replace(
                event, session_id=event.session_id or self.session_id, at=event.at or time.time()
            )
        if not self.batch:
            self.timer = threading.Timer(FLUSH_AFTER_S, tell_quietly, args=(self.actor_ref, FLUSH_DUE))
            self.timer.daemon = True
            self.timer.start()
        self.batch.append(event)

    def redacted(self, event: Event) -> Event:
        """The event without secrets: one search of its JSON, and the walk of every string only when needed."""
        line = to_json(event).decode()
        # msgspec writes each string as it is unless it escapes a character: with no escape, a secret
        # in any of the event's strings is in the line too, and a line without one is clean.
        if "\\" not in line and self.redactor.redact(line) == line:
            return event
        return self.redactor.redact_struct(event)

    def flush(self) -> None:
        """Write the batch in one transaction, then show it."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.batch:
            return
        assert self.store is not None
        batch, self.batch = self.batch, []
        self.store.record_many(batch)
        for event in batch:
            if isinstance(event, SessionFinished):
                self.store.set_summary(event.session_id, summarise_session(self.store.events(event.session_id)))
            for subscriber in self.subscribers:
                try:
                    subscriber(event)
                except Exception:  # a broken view must not stop the recording
                    log.exception("event subscriber failed")
        for flush in self.flushes:
            try:
                flush()
            except Exception:
                log.exception("event subscriber failed to flush")
