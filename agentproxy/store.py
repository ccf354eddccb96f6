"""The session store: one SQLite file holding every session, its tasks, subtasks and events.

Events are the record; the sessions and subtasks tables are projections of them, updated in the
same transaction as the event that changes them, so a listing never disagrees with the log.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import msgspec

from agentproxy.errors import StoreError, UnknownSessionError
from agentproxy.messages import (
    AgentFinished,
    AgentStarted,
    AnyEvent,
    BrainCalled,
    Event,
    SessionFinished,
    SubtaskFinished,
    SubtaskStarted,
    event_json_decoder,
    to_json,
)

SCHEMA_VERSION = 5
MIN_PREFIX = 4  # shorter prefixes match too much to be a safe way to name a session
ORPHAN_REASON = "pa exited without finishing (crashed or killed)"

WAL_ATTEMPTS = 100  # 5 s

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    working_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    pid INTEGER,
    screenshots TEXT NOT NULL DEFAULT '[]',
    cost_usd REAL NOT NULL DEFAULT 0,
    last_agent_session TEXT,
    summary TEXT,
    ended_at REAL,
    brain_cost_usd REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tasks (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    task TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS subtasks (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    subtask_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    agent_session_id TEXT,
    cost_usd REAL NOT NULL DEFAULT 0,
    agent TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, subtask_id)
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS check_cache (
    tree_sha TEXT NOT NULL,
    command TEXT NOT NULL,
    body BLOB NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (tree_sha, command)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_session ON events (session_id, seq);
CREATE INDEX IF NOT EXISTS sessions_by_created ON sessions (created_at);
"""

# From version n to n + 1; a new store gets _SCHEMA, already at SCHEMA_VERSION.
_MIGRATIONS = {
    1: ("ALTER TABLE sessions ADD COLUMN summary TEXT", "ALTER TABLE sessions ADD COLUMN ended_at REAL"),
    2: ("ALTER TABLE sessions ADD COLUMN brain_cost_usd REAL NOT NULL DEFAULT 0",),
    3: (
        "CREATE TABLE check_cache (tree_sha TEXT NOT NULL, command TEXT NOT NULL, body BLOB NOT NULL,"
        " at REAL NOT NULL, PRIMARY KEY (tree_sha, command))",
    ),
    4: ("ALTER TABLE subtasks ADD COLUMN agent TEXT NOT NULL DEFAULT ''",),
}

_SESSION_COLUMNS = (
    "id, task, working_dir, status, reason, created_at, updated_at, pid, screenshots, cost_usd, last_agent_session,"
    " brain_cost_usd"
)


@dataclass(frozen=True)
class SessionRow:
    id: str
    task: str  # the latest task given to the session
    working_dir: str
    status: str
    reason: str
    created_at: float
    updated_at: float
    pid: int | None
    screenshots: tuple[str, ...]
    cost_usd: float  # the agents'
    last_agent_session: str | None
    brain_cost_usd: float = 0.0  # the supervisor's own LLM calls


@dataclass(frozen=True)
class SubtaskRow:
    subtask_id: str
    title: str
    status: str
    attempts: int
    reason: str
    agent_session_id: str | None
    cost_usd: float
    agent: str = ""  # the agent backend that worked on it (claude, codex, gemini)


class SessionStore:
    """One connection, shared by threads under a lock; every write is one IMMEDIATE transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of the session store {self.path}: {exc.strerror}") from exc
        try:
            # isolation_level=None: transactions are begun explicitly, so their kind is ours to choose
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the session store {self.path}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._setup()
        except StoreError as exc:
            self._conn.close()
            if _is_damage(exc.__cause__):
                raise StoreError(
                    f"session store {self.path} is unreadable: {exc.__cause__}; move it aside (a new one is made)"
                ) from exc
            raise

    def _wal(self) -> None:
        """WAL mode; two connections making a new store at once may find it locked (busy_timeout does
        not cover this pragma): tried again for a while."""
        for attempt in range(WAL_ATTEMPTS):
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                    raise
                time.sleep(0.05)

    def _setup(self) -> None:
        with self._locked("open"):
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._wal()
            # In WAL mode NORMAL loses no committed event on a crash of pa, only on power loss.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        with self._locked("create the schema", write=True) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"session store {self.path} has schema version {version},"
                    f" newer than this pa knows ({SCHEMA_VERSION})"
                )
            if version == 0:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
            else:
                for step in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _locked(self, what: str, write: bool = False) -> Iterator[sqlite3.Connection]:
        """Hold the lock (and, when writing, a transaction); turn sqlite errors into StoreError."""
        with self._lock:
            conn = self._conn
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
                yield conn
                if write:
                    conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # a closed connection has no transaction to roll back
                    if conn.in_transaction:
                        conn.rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"session store {self.path}: cannot {what}: {exc}") from exc
                raise

    # -- sessions ---------------------------------------------------------------------------

    def create_session(self, task: str, working_dir: str, screenshots: list[str]) -> str:
        now = time.time()
        with self._locked("create a session", write=True) as conn:
            session_id = secrets.token_hex(4)
            while conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                session_id = secrets.token_hex(4)
            conn.execute(
                "INSERT INTO sessions (id, task, working_dir, status, reason, created_at, updated_at, pid, screenshots)"
                " VALUES (?, ?, ?, 'running', '', ?, ?, ?, ?)",
                (session_id, task, working_dir, now, now, os.getpid(), json.dumps(list(screenshots))),
            )
            conn.execute("INSERT INTO tasks VALUES (?, 1, ?, ?)", (session_id, task, now))
        return session_id

    def add_task(self, session_id: str, task: str) -> None:
        now = time.time()
        with self._locked("add a task", write=True) as conn:
            updated = conn.execute(
                "UPDATE sessions SET task = ?, status = 'running', reason = '', pid = ?, updated_at = ? WHERE id = ?",
                (task, os.getpid(), now, session_id),
            )
            if updated.rowcount == 0:
                raise UnknownSessionError(f"unknown session {session_id!r} (see pa --list-sessions)")
            conn.execute(
                "INSERT INTO tasks SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ? FROM tasks WHERE session_id = ?",
                (session_id, task, now, session_id),
            )

    def get(self, id_or_prefix: str) -> SessionRow:
        """The session with this id, or the only one whose id starts with it."""
        with self._locked("read a session") as conn:
            row = conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (id_or_prefix,)).fetchone()
            if row is not None:
                return _session_row(row)
            matches = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE substr(id, 1, ?) = ? LIMIT 2",
                (len(id_or_prefix), id_or_prefix),
            ).fetchall()
        if not id_or_prefix or not matches:
            raise UnknownSessionError(f"unknown session {id_or_prefix!r} (see pa --list-sessions)")
        if len(id_or_prefix) < MIN_PREFIX:
            raise UnknownSessionError(
                f"session prefix {id_or_prefix!r} is too short: give at least {MIN_PREFIX} characters"
            )
        if len(matches) > 1:
            raise UnknownSessionError(f"session prefix {id_or_prefix!r} is ambiguous (see pa --list-sessions)")
        return _session_row(matches[0])

    def list_sessions(self, limit: int = 50) -> list[SessionRow]:
        """Newest first; a session whose pa died shows as interrupted, not running."""
        self.mark_interrupted_orphans()
        with self._locked("list sessions") as conn:
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_session_row(row) for row in rows]

    def set_status(self, session_id: str, status: str, reason: str = "") -> None:
        with self._locked("set a session's status", write=True) as conn:
            updated = conn.execute(
                "UPDATE sessions SET status = ?, reason = ?, updated_at = ? WHERE id = ?",
                (status, reason, time.time(), session_id),
            )
            if updated.rowcount == 0:
                raise UnknownSessionError(f"unknown session {session_id!r} (see pa --list-sessions)")

    def set_summary(self, session_id: str, summary: str) -> None:
        """Keep what the session did, for later sessions in the same project; it ends now."""
        with self._locked("save a session's summary", write=True) as conn:
            updated = conn.execute(
                "UPDATE sessions SET summary = ?, ended_at = ? WHERE id = ?", (summary, time.time(), session_id)
            )
            if updated.rowcount == 0:
                raise UnknownSessionError(f"unknown session {session_id!r} (see pa --list-sessions)")

    def recent_summaries(self, working_dir: str, limit: int = 5) -> list[tuple[str, str, float]]:
        """(session id, summary, ended_at) of the latest summarised sessions in working_dir, newest first."""
        with self._locked("read session summaries") as conn:
            rows = conn.execute(
                "SELECT id, summary, ended_at FROM sessions"
                " WHERE working_dir = ? AND summary IS NOT NULL AND summary != ''"
                " ORDER BY ended_at DESC, rowid DESC LIMIT ?",
                (working_dir, limit),
            ).fetchall()
        return [(row["id"], row["summary"], row["ended_at"]) for row in rows]

    def mark_interrupted_orphans(self) -> list[str]:
        """Mark running sessions whose pa process is gone as interrupted; return their ids."""
        with self._locked("mark interrupted sessions", write=True) as conn:
            running = conn.execute("SELECT id, pid FROM sessions WHERE status = 'running'").fetchall()
            orphans = [row["id"] for row in running if not _pid_alive(row["pid"])]
            now = time.time()
            for session_id in orphans:
                conn.execute(
                    "UPDATE sessions SET status = 'interrupted', reason = ?, updated_at = ? WHERE id = ?",
                    (ORPHAN_REASON, now, session_id),
                )
        return orphans

    # -- events and their projections -------------------------------------------------------

    def record(self, event: Event) -> None:
        """Append the event to its session's log and update the projections it changes."""
        self.record_many([event])

    def record_many(self, events: Sequence[Event]) -> None:
        """Append the events, in order, and update their projections: all in one transaction, or none."""
        if not events:
            return
        last_at: dict[str, float] = {}  # per session, its updated_at: the last event's time
        for event in events:
            if not event.session_id:
                raise StoreError(f"cannot record a {type(event).__name__} event without a session id")
            last_at[event.session_id] = event.at or time.time()
        what = f"record {len(events)} events" if len(events) > 1 else f"record a {_kind(events[0])} event"
        with self._locked(what, write=True) as conn:
            last_seq: dict[str, int] = {}  # the write lock is held: nobody else appends meanwhile
            for session_id, at in last_at.items():
                updated = conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (at, session_id))
                if updated.rowcount == 0:
                    raise StoreError(f"cannot {what} for unknown session {session_id!r}")
                query = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?"
                last_seq[session_id] = conn.execute(query, (session_id,)).fetchone()[0]
            rows = []
            for event in events:
                seq = last_seq[event.session_id] = last_seq[event.session_id] + 1
                rows.append((event.session_id, seq, _kind(event), event.at, to_json(event)))
            conn.executemany("INSERT INTO events (session_id, seq, kind, at, body) VALUES (?, ?, ?, ?, ?)", rows)
            for event in events:
                _project(conn, event)

    def events(self, session_id: str) -> list[AnyEvent]:
        with self._locked("read events") as conn:
            bodies = conn.execute("SELECT body FROM events WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        try:
            return [event_json_decoder.decode(body) for (body,) in bodies]
        except msgspec.DecodeError as exc:
            raise StoreError(
                f"session store {self.path}: an event of session {session_id!r} is unreadable: {exc}"
            ) from exc

    def subtasks(self, session_id: str) -> list[SubtaskRow]:
        with self._locked("read subtasks") as conn:
            rows = conn.execute(
                "SELECT subtask_id, title, status, attempts, reason, agent_session_id, cost_usd, agent"
                " FROM subtasks WHERE session_id = ? ORDER BY rowid",
                (session_id,),
            ).fetchall()
        return [SubtaskRow(**dict(row)) for row in rows]

    def tasks(self, session_id: str) -> list[str]:
        with self._locked("read tasks") as conn:
            rows = conn.execute("SELECT task FROM tasks WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        return [task for (task,) in rows]

    # -- lifetime ---------------------------------------------------------------------------

    # -- checks on a tree, run once ------------------------------------------------------

    def cached_check(self, tree: str, command: str) -> bytes | None:
        """A check's recorded run on a tree (git's id of the files' contents; see agentproxy.baseline), or None."""
        with self._locked("read the check cache") as conn:
            row = conn.execute(
                "SELECT body FROM check_cache WHERE tree_sha = ? AND command = ?", (tree, command)
            ).fetchone()
        return bytes(row["body"]) if row else None

    def cache_check(self, tree: str, command: str, body: bytes) -> None:
        with self._locked("write the check cache", write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO check_cache (tree_sha, command, body, at) VALUES (?, ?, ?, ?)",
                (tree, command, body, time.time()),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _project(conn: sqlite3.Connection, event: Event) -> None:
    """Update the sessions and subtasks tables for the events that change them."""
    sid = event.session_id
    match event:
        case SubtaskStarted(subtask_id=subtask_id, title=title, attempt=attempt, agent=agent):
            conn.execute(
                "INSERT INTO subtasks (session_id, subtask_id, title, status, attempts, agent)"
                " VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (session_id, subtask_id) DO UPDATE"
                " SET title = excluded.title, status = 'running', attempts = excluded.attempts, reason = '',"
                " agent = excluded.agent",
                (sid, subtask_id, title, attempt, agent),
            )
        case AgentStarted(subtask_id=subtask_id, agent_session_id=agent):
            conn.execute(
                "INSERT INTO subtasks (session_id, subtask_id, status, agent_session_id) VALUES (?, ?, 'running', ?)"
                " ON CONFLICT (session_id, subtask_id) DO UPDATE SET agent_session_id = excluded.agent_session_id",
                (sid, subtask_id, agent),
            )
            conn.execute("UPDATE sessions SET last_agent_session = ? WHERE id = ?", (agent, sid))
        case AgentFinished(subtask_id=subtask_id, usage=usage):
            conn.execute(
                "UPDATE subtasks SET cost_usd = cost_usd + ? WHERE session_id = ? AND subtask_id = ?",
                (usage.cost_usd, sid, subtask_id),
            )
            conn.execute("UPDATE sessions SET cost_usd = cost_usd + ? WHERE id = ?", (usage.cost_usd, sid))
        case SubtaskFinished(subtask_id=subtask_id, status=status, reason=reason):
            conn.execute(
                "UPDATE subtasks SET status = ?, reason = ? WHERE session_id = ? AND subtask_id = ?",
                (status, reason, sid, subtask_id),
            )
        case BrainCalled(cost_usd=cost):
            conn.execute("UPDATE sessions SET brain_cost_usd = brain_cost_usd + ? WHERE id = ?", (cost, sid))
        case SessionFinished(status=status, reason=reason):
            # its cost_usd is the sum AgentFinished events already added
            conn.execute("UPDATE sessions SET status = ?, reason = ? WHERE id = ?", (status, reason, sid))


def _kind(event: Event) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def check_store(path: Path) -> None:
    """Open the store once (creating it if new), so that a damaged one is reported before a run changes anything."""
    SessionStore(path).close()


def _is_damage(exc: BaseException | None) -> bool:
    """Not a database, or a malformed one; a locked or busy store is an OperationalError and not damage."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _session_row(row: sqlite3.Row) -> SessionRow:
    values = dict(row)
    values["screenshots"] = tuple(json.loads(values["screenshots"]))
    return SessionRow(**values)


def _pid_alive(pid: int | None) -> bool:
    if not pid or pid < 0:  # kill(0 or negative) would probe a process group, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it just belongs to someone else
        return True
    return True
