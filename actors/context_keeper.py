"""ContextKeeper: owns the session store and the project context; records and fans out events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from actors.base import Directory, SupervisedActor
from agentproxy.context import load_project_context
from agentproxy.messages import ContextLoaded, Event, GetContext, OpenSession, Record
from agentproxy.store import SessionStore

log = logging.getLogger("agentproxy.actors")

Subscriber = Callable[[Event], None]


class ContextKeeper(SupervisedActor):
    """Runs on its own thread; the only writer of the store in this process.

    Subscribers are called on this thread, in order; one that raises is logged and skipped.
    """

    def __init__(self, name: str, directory: Directory, store_path: Path, subscribers: Sequence[Subscriber]) -> None:
        super().__init__(name, directory)
        self.store_path = store_path
        self.subscribers = list(subscribers)
        self.store: SessionStore | None = None
        self.session_id = ""

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
            case GetContext(working_dir=working_dir):
                context = load_project_context(Path(working_dir))
                self.on_record(ContextLoaded(sources=list(context.sources), chars=len(context.text)))
                return context.text
        return None

    def on_open_session(self, request: OpenSession) -> str:
        assert self.store is not None
        if request.continue_session:
            self.session_id = self.store.get(request.continue_session).id
            self.store.add_task(self.session_id, request.task)
        else:
            self.session_id = self.store.create_session(request.task, request.working_dir, request.screenshots)
        return self.session_id

    def on_record(self, event: Event) -> None:
        assert self.store is not None
        if not event.session_id or not event.at:
            event = msgspec.structs.replace(event, session_id=event.session_id or self.session_id, at=event.at or time.time())
        self.store.record(event)
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception:  # a broken view must not stop the recording
                log.exception("event subscriber failed")
