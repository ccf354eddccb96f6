"""ContextKeeper: owns the session store and what the brain knows; records and fans out events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from agentproxy.actors.base import Directory, SupervisedActor

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
    SessionFinished,
)
from agentproxy.redact import Redactor
from agentproxy.store import SessionStore

log = logging.getLogger("agentproxy.actors")

Subscriber = Callable[[Event], None]
HISTORY_SESSIONS = 5


class ContextKeeper(SupervisedActor):
    """Runs on its own thread; the only writer of the store and of the knowledge board.

    Subscribers are called on this thread, in order; one that raises is logged and skipped.
    Every event passes the run's redactor first: the store and the subscribers never see a secret.
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
        self.board = board
        self.redactor = redactor
        self.store: SessionStore | None = None
        self.session_id = ""
        self.brain_cost_usd = 0.0

    def on_start(self) -> None:
        self.store = SessionStore(self.store_path)

    def release(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case Record(event=event):
                self.on_record(event)
            case OpenSession():
                return self.on_open_session(message)
            case GetContext():
                return self.on_get_context(message)
        return None

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
        return list(context.sources)

    def on_record(self, event: Event) -> None:
        assert self.store is not None
        event = self.redactor.redact_struct(event)
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
        if not event.session_id or not event.at:
            event = msgspec.structs.replace(
                event, session_id=event.session_id or self.session_id, at=event.at or time.time()
            )
        self.store.record(event)
        if isinstance(event, SessionFinished):
            self.store.set_summary(event.session_id, summarise_session(self.store.events(event.session_id)))
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception:  # a broken view must not stop the recording
                log.exception("event subscriber failed")
