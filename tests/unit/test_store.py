"""The session store: ids and prefixes, the event log, its projections, orphans, and sharing the file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from agentproxy.errors import StoreError, UnknownSessionError
from agentproxy.messages import (
    AgentFinished,
    AgentStarted,
    BrainCalled,
    Notice,
    Plan,
    PlanMade,
    SessionFinished,
    SessionStarted,
    Subtask,
    SubtaskFinished,
    SubtaskStarted,
    Usage,
)
from agentproxy.store import ORPHAN_REASON, SCHEMA_VERSION, SessionStore


@pytest.fixture
def store(tmp_path: Path):
    with SessionStore(tmp_path / "nested" / "store.db") as store:
        yield store


def _force_id(store: SessionStore, old: str, new: str) -> None:
    """Give a session a chosen id, so prefix collisions are deterministic."""
    with store._locked("rename", write=True) as conn:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute("UPDATE sessions SET id = ? WHERE id = ?", (new, old))
        conn.execute("UPDATE tasks SET session_id = ? WHERE session_id = ?", (new, old))


def test_create_and_get(store: SessionStore) -> None:
    sid = store.create_session("fix the bug", "/tmp/w", ["a.png"])
    row = store.get(sid)
    assert len(sid) == 8 and int(sid, 16) >= 0
    assert (row.task, row.working_dir, row.status, row.pid) == ("fix the bug", "/tmp/w", "running", os.getpid())
    assert row.screenshots == ("a.png",)
    assert row.cost_usd == 0 and row.last_agent_session is None
    assert store.tasks(sid) == ["fix the bug"]


def test_get_by_prefix_unknown_and_ambiguous(store: SessionStore) -> None:
    _force_id(store, store.create_session("one", "/w", []), "abcd1111")
    _force_id(store, store.create_session("two", "/w", []), "abcd2222")
    assert store.get("abcd1").task == "one"
    with pytest.raises(UnknownSessionError, match="'abcd' is ambiguous"):
        store.get("abcd")
    with pytest.raises(UnknownSessionError, match="too short"):
        store.get("ab")  # even a unique short prefix would be fragile, so none is accepted
    with pytest.raises(UnknownSessionError, match=r"unknown session 'ffff' \(see pa --list-sessions\)"):
        store.get("ffff")
    with pytest.raises(UnknownSessionError, match="unknown session ''"):
        store.get("")


def test_record_and_events_round_trip(store: SessionStore) -> None:
    sid = store.create_session("t", "/w", [])
    plan = Plan(subtasks=[Subtask(id="s1", title="first", instructions="do it", checks=["true"])])
    recorded = [
        SessionStarted(session_id=sid, at=1.0, task="t", working_dir="/w"),
        PlanMade(session_id=sid, at=2.0, plan=plan, brain="offline"),
        SubtaskStarted(session_id=sid, at=3.0, subtask_id="s1", title="first"),
        Notice(session_id=sid, at=4.0, text="héllo ✓", level="warning"),
        SessionFinished(session_id=sid, at=5.0, status="done", cost_usd=0.5),
    ]
    for event in recorded:
        store.record(event)
    assert store.events(sid) == recorded
    assert store.events("nonexistent") == []


def test_projections(store: SessionStore) -> None:
    sid = store.create_session("t", "/w", [])
    for event in [
        SubtaskStarted(session_id=sid, at=10.0, subtask_id="s1", title="first"),
        AgentStarted(session_id=sid, at=11.0, subtask_id="s1", agent_session_id="agent-a"),
        AgentFinished(
            session_id=sid,
            at=12.0,
            subtask_id="s1",
            agent_session_id="agent-a",
            is_error=False,
            usage=Usage(cost_usd=0.25),
        ),
        SubtaskStarted(session_id=sid, at=13.0, subtask_id="s1", title="first", attempt=2),
        AgentFinished(
            session_id=sid,
            at=14.0,
            subtask_id="s1",
            agent_session_id="agent-a",
            is_error=False,
            usage=Usage(cost_usd=0.5),
        ),
        SubtaskFinished(session_id=sid, at=15.0, subtask_id="s1", status="done"),
        SubtaskStarted(session_id=sid, at=16.0, subtask_id="s2", title="second"),
        AgentStarted(session_id=sid, at=17.0, subtask_id="s2", agent_session_id="agent-b"),
        AgentFinished(
            session_id=sid,
            at=18.0,
            subtask_id="s2",
            agent_session_id="agent-b",
            is_error=True,
            usage=Usage(cost_usd=1.0),
        ),
        SubtaskFinished(session_id=sid, at=19.0, subtask_id="s2", status="failed", reason="checks failed"),
        SessionFinished(session_id=sid, at=20.0, status="failed", reason="s2 failed", cost_usd=1.75),
    ]:
        store.record(event)
    row = store.get(sid)
    # SessionFinished carries the total again; counting it would double the cost
    assert row.cost_usd == pytest.approx(1.75)
    assert (row.status, row.reason, row.last_agent_session, row.updated_at) == ("failed", "s2 failed", "agent-b", 20.0)
    first, second = store.subtasks(sid)
    assert (first.subtask_id, first.status, first.attempts, first.agent_session_id) == ("s1", "done", 2, "agent-a")
    assert first.cost_usd == pytest.approx(0.75)
    assert (second.title, second.status, second.reason) == ("second", "failed", "checks failed")
    assert second.cost_usd == pytest.approx(1.0)


def test_record_rejects_events_without_a_known_session(store: SessionStore) -> None:
    with pytest.raises(StoreError, match="without a session id"):
        store.record(Notice(text="orphan"))
    with pytest.raises(StoreError, match="unknown session 'nope'"):
        store.record(Notice(session_id="nope", text="orphan"))


def test_add_task_reopens_the_session(store: SessionStore) -> None:
    sid = store.create_session("first", "/w", [])
    store.set_status(sid, "failed", "boom")
    store.add_task(sid, "second")
    row = store.get(sid)
    assert (row.task, row.status, row.reason, row.pid) == ("second", "running", "", os.getpid())
    assert store.tasks(sid) == ["first", "second"]
    with pytest.raises(UnknownSessionError):
        store.add_task("missing1", "x")


def test_wal_mode_and_schema_version(store: SessionStore) -> None:
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


# The schema as version 1 created it, kept literally: the migration must work from exactly this.
V1_SCHEMA = """
CREATE TABLE sessions (
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
    last_agent_session TEXT
);
CREATE TABLE tasks (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    task TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE subtasks (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    subtask_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    agent_session_id TEXT,
    cost_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, subtask_id)
);
CREATE TABLE events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX events_by_session ON events (session_id, seq);
CREATE INDEX sessions_by_created ON sessions (created_at);
PRAGMA user_version = 1;
"""


def test_version_1_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute(
        "INSERT INTO sessions (id, task, working_dir, status, created_at, updated_at) VALUES"
        " ('old00001', 'old task', '/w', 'done', 1, 1)"
    )
    conn.commit()
    conn.close()
    with SessionStore(path) as store:
        assert store.get("old00001").task == "old task"
        assert store.recent_summaries("/w") == []
        store.set_summary("old00001", "did the old task")
        assert [row[:2] for row in store.recent_summaries("/w")] == [("old00001", "did the old task")]
    with SessionStore(path) as store:  # reopening at the current version migrates nothing twice
        assert store.recent_summaries("/w")[0][1] == "did the old task"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_summaries_newest_first_per_working_dir(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [store.create_session(f"task {i}", "/w", []) for i in range(4)]
    other = store.create_session("elsewhere", "/other", [])
    store.create_session("never summarised", "/w", [])
    for at, sid in enumerate([ids[2], ids[0], ids[3], ids[1], other]):
        monkeypatch.setattr("agentproxy.store.time.time", lambda at=at: 1000.0 + at)
        store.set_summary(sid, f"summary of {sid}")
    store.set_summary(ids[3], "")  # an empty summary says nothing: not listed
    recent = store.recent_summaries("/w")
    assert recent == [
        (ids[1], f"summary of {ids[1]}", 1003.0),
        (ids[0], f"summary of {ids[0]}", 1001.0),
        (ids[2], f"summary of {ids[2]}", 1000.0),
    ]
    assert [sid for sid, _, _ in store.recent_summaries("/w", limit=2)] == [ids[1], ids[0]]
    assert store.recent_summaries("/nowhere") == []
    with pytest.raises(UnknownSessionError):
        store.set_summary("missing1", "x")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match=f"{path}.*schema version 99"):
        SessionStore(path)


def test_sqlite_errors_become_store_errors(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not a database, just some text padding it out" * 40)
    with pytest.raises(StoreError, match=str(path)):
        SessionStore(path)


def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "store.db")
    store.close()
    with pytest.raises(StoreError, match=f"{tmp_path}.*closed database"):
        store.list_sessions()


def test_orphans_are_marked_interrupted(store: SessionStore) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped, so its pid names no process
    orphan = store.create_session("crashed", "/w", [])
    alive = store.create_session("mine", "/w", [])
    finished = store.create_session("done", "/w", [])
    store.set_status(finished, "done")
    with store._locked("set pid", write=True) as conn:
        conn.execute("UPDATE sessions SET pid = ? WHERE id IN (?, ?)", (dead.pid, orphan, finished))
    rows = {row.id: row for row in store.list_sessions()}
    assert (rows[orphan].status, rows[orphan].reason) == ("interrupted", ORPHAN_REASON)
    assert rows[alive].status == "running"
    assert rows[finished].status == "done"
    assert store.mark_interrupted_orphans() == []  # already marked


def test_second_store_on_the_same_file_sees_the_data(store: SessionStore) -> None:
    sid = store.create_session("shared", "/w", [])
    store.record(Notice(session_id=sid, at=1.0, text="hi"))
    with SessionStore(store.path) as other:
        assert other.get(sid).task == "shared"
        assert other.events(sid) == [Notice(session_id=sid, at=1.0, text="hi")]
        other.set_status(sid, "done")
    assert store.get(sid).status == "done"


def test_list_newest_first_with_limit(store: SessionStore) -> None:
    ids = [store.create_session(f"task {i}", "/w", []) for i in range(5)]
    assert [row.id for row in store.list_sessions()] == ids[::-1]
    assert [row.id for row in store.list_sessions(limit=2)] == [ids[4], ids[3]]


def test_threads_share_one_store(store: SessionStore) -> None:
    sid = store.create_session("busy", "/w", [])

    def record_many(worker: int) -> None:
        for i in range(25):
            store.record(
                AgentFinished(
                    session_id=sid,
                    at=1.0,
                    subtask_id=f"w{worker}",
                    agent_session_id="a",
                    is_error=False,
                    usage=Usage(cost_usd=0.01),
                    num_turns=i,
                )
            )

    threads = [threading.Thread(target=record_many, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # every event got its own seq and its cost counted once, however the threads interleaved
    assert len(store.events(sid)) == 100
    assert store.get(sid).cost_usd == pytest.approx(1.0)


def test_brain_calls_add_up_apart_from_the_agents_cost(store: SessionStore) -> None:
    sid = store.create_session("t", "/w", [])
    store.record(
        AgentFinished(
            session_id=sid, at=1.0, subtask_id="1", agent_session_id="a", is_error=False, usage=Usage(cost_usd=0.5)
        )
    )
    for cost in (0.001, 0.002):
        store.record(BrainCalled(session_id=sid, at=1.0, purpose="plan", model="m", ok=True, cost_usd=cost))
    row = store.get(sid)
    assert row.cost_usd == pytest.approx(0.5) and row.brain_cost_usd == pytest.approx(0.003)


def test_a_batch_is_numbered_in_order_across_sessions(store: SessionStore) -> None:
    first, second = store.create_session("a", "/w", []), store.create_session("b", "/w", [])
    store.record(Notice(session_id=first, at=1.0, text="before"))
    batch = [Notice(session_id=sid, at=2.0 + n, text=f"n{n}") for n, sid in enumerate([first, second, first, second])]
    store.record_many(batch)
    store.record(Notice(session_id=first, at=9.0, text="after"))
    assert [e.text for e in store.events(first)] == ["before", "n0", "n2", "after"]
    assert [e.text for e in store.events(second)] == ["n1", "n3"]
    with store._locked("read seqs") as conn:
        seqs = conn.execute("SELECT seq FROM events WHERE session_id = ? ORDER BY seq", (first,)).fetchall()
    assert [seq for (seq,) in seqs] == [1, 2, 3, 4]
    assert (store.get(first).updated_at, store.get(second).updated_at) == (9.0, 5.0)


def test_a_batch_is_recorded_whole_or_not_at_all(store: SessionStore) -> None:
    sid = store.create_session("t", "/w", [])
    batch = [
        SubtaskStarted(session_id=sid, at=1.0, subtask_id="1", title="first"),
        AgentFinished(
            session_id=sid, at=2.0, subtask_id="1", agent_session_id="a", is_error=False, usage=Usage(cost_usd=0.5)
        ),
        Notice(session_id="gone0000", at=3.0, text="of a session that does not exist"),
    ]
    with pytest.raises(StoreError, match="unknown session 'gone0000'"):
        store.record_many(batch)
    assert store.events(sid) == [] and store.subtasks(sid) == [] and store.get(sid).cost_usd == 0
    store.record_many(batch[:2])
    assert [(row.status, row.cost_usd) for row in store.subtasks(sid)] == [("running", 0.5)]
