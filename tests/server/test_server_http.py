"""pa-server over real HTTP (httpx, httpx-sse): every endpoint, streams that survive a client going
away, stopping, two tasks at once, and what the server refuses."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentproxy.testing.live_server import Server, scripted_agent, sse

WRITES_HELLO = [[{"write": {"path": "hello.py", "content": "print('hi')\n"}}, {"result": "Wrote hello.py."}]]
SLOW_HELLO = [
    [{"sleep": 2}, {"write": {"path": "hello.py", "content": "print('hi')\n"}}, {"result": "Wrote hello.py."}]
]
HANGS = [[{"say": "thinking"}, {"sleep": 120}, {"result": "never"}]]


def stream(
    client: httpx.Client, method: str, path: str, limit: int | None = None, **kwargs: Any
) -> list[dict[str, str]]:
    """The SSE messages of a request, all of them or the first `limit` (then the client goes away)."""
    got = []
    with client.stream(method, path, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for message in sse(response.iter_lines()):
            got.append(message)
            if limit is not None and len(got) >= limit:
                break
    return got


def numbered(messages: list[dict[str, str]]) -> list[int]:
    return [int(m["id"]) for m in messages if "id" in m]


def wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_task_streams_its_events_numbered_and_the_session_is_listed(
    tmp_path: Path, server_with: Callable[..., Server]
) -> None:
    server = server_with(scripted_agent(tmp_path, WRITES_HELLO))
    with server.client() as client:
        messages = stream(client, "POST", "/task", json={"task": "Create hello.py", "working_dir": "./sandbox"})
        assert messages[0]["event"] == "session"
        session_id = json.loads(messages[0]["data"])["session_id"]
        assert numbered(messages) == list(range(1, len(messages) - 1))  # every event, in order, once
        kinds = [m["event"] for m in messages[1:-1]]
        assert kinds[0] == "session_started" and kinds[-1] == "session_finished"
        assert all(json.loads(m["data"])["kind"] == m["event"] for m in messages[1:-1])
        done = json.loads(messages[-1]["data"])
        assert messages[-1]["event"] == "done" and done["status"] == "done" and done["session_id"] == session_id
        assert (server.root / "sandbox" / "hello.py").read_text() == "print('hi')\n"
        assert client.get("/health").json() == {"status": "healthy", "active_sessions": 0}
        listed = client.get("/sessions").json()["sessions"]
        assert [s["id"] for s in listed] == [session_id] and listed[0]["status"] == "done"
        one = client.get(f"/session/{session_id[:4]}").json()  # a unique prefix is enough
        assert one["id"] == session_id and one["tasks"] == ["Create hello.py"] and one["events"] == len(kinds)


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(
    tmp_path: Path, server_with: Callable[..., Server]
) -> None:
    server = server_with(scripted_agent(tmp_path, SLOW_HELLO))
    with server.client() as client:
        first = stream(client, "POST", "/task", limit=4, json={"task": "Create hello.py", "working_dir": "w"})
        session_id = json.loads(first[0]["data"])["session_id"]
        seen = numbered(first)
        rest = stream(client, "GET", f"/session/{session_id}/events", headers={"Last-Event-ID": str(seen[-1])})
        assert rest[-1]["event"] == "done"
        together = seen + numbered(rest)
        assert together == list(range(1, len(together) + 1))
        replayed = stream(client, "GET", f"/session/{session_id}/events")  # after the end: from the store
        assert [m["data"] for m in replayed[:-1]] == [m["data"] for m in first[1:] + rest[:-1]]


def test_a_client_that_goes_away_does_not_stop_its_task(tmp_path: Path, server_with: Callable[..., Server]) -> None:
    server = server_with(scripted_agent(tmp_path, SLOW_HELLO))
    with server.client() as client:
        first = stream(client, "POST", "/task", limit=2, json={"task": "Create hello.py", "working_dir": "w"})
        session_id = json.loads(first[0]["data"])["session_id"]
        assert client.get("/health").json()["active_sessions"] == 1
        wait_for(lambda: client.get(f"/session/{session_id}").json()["status"] == "done")
    assert (server.root / "w" / "hello.py").exists()


def agent_processes(script_marker: str) -> list[int]:
    """The scripted agents playing that script (not the server, whose --claude-bin names it too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "agentproxy.scripted_agent" in argv and any(script_marker in arg for arg in argv):
                found.append(int(entry.name))
    return found


def test_stop_ends_the_session_interrupted_and_leaves_no_agent_process(
    tmp_path: Path, server_with: Callable[..., Server]
) -> None:
    server = server_with(scripted_agent(tmp_path, HANGS, name="hangs.json"))
    with server.client() as client:
        first = stream(client, "POST", "/task", limit=2, json={"task": "Think forever", "working_dir": "w"})
        session_id = json.loads(first[0]["data"])["session_id"]
        wait_for(lambda: bool(agent_processes("hangs.json")))
        assert client.post("/stop", json={"session_id": session_id[:6]}).json() == {
            "session_id": session_id,
            "stopped": True,
        }
        rest = stream(client, "GET", f"/session/{session_id}/events")
        assert json.loads(rest[-1]["data"])["status"] == "interrupted"
        assert client.post("/stop", json={"session_id": session_id}).json()["stopped"] is False
    wait_for(lambda: not agent_processes("hangs.json"), timeout_s=15)


def test_two_tasks_run_at_once_and_a_busy_directory_is_409(tmp_path: Path, server_with: Callable[..., Server]) -> None:
    server = server_with(scripted_agent(tmp_path, SLOW_HELLO))
    with server.client() as client:
        a = stream(client, "POST", "/task", limit=1, json={"task": "Create hello.py", "working_dir": "a"})
        busy = client.post("/task", json={"task": "Create hello.py", "working_dir": "a"})
        assert busy.status_code == 409 and "one run per directory" in busy.json()["detail"]
        b = stream(client, "POST", "/task", limit=1, json={"task": "Create hello.py", "working_dir": "b"})
        assert client.get("/health").json()["active_sessions"] == 2
        for first in (a, b):
            session_id = json.loads(first[0]["data"])["session_id"]
            wait_for(lambda session_id=session_id: client.get(f"/session/{session_id}").json()["status"] == "done")
    assert (server.root / "a" / "hello.py").exists() and (server.root / "b" / "hello.py").exists()


def test_more_work_continues_a_session_and_its_numbers(tmp_path: Path, server_with: Callable[..., Server]) -> None:
    turns = [*WRITES_HELLO, [{"write": {"path": "bye.py", "content": "print('bye')\n"}}, {"result": "Wrote bye.py."}]]
    server = server_with(scripted_agent(tmp_path, turns))
    with server.client() as client:
        first = stream(client, "POST", "/task", json={"task": "Create hello.py", "working_dir": "w"})
        session_id = json.loads(first[0]["data"])["session_id"]
        more = stream(client, "POST", f"/session/{session_id}/message", json={"task": "Now create bye.py"})
        assert json.loads(more[0]["data"])["session_id"] == session_id
        assert numbered(more)[0] == numbered(first)[-1] + 1
        assert json.loads(more[-1]["data"])["status"] == "done"
    assert (server.root / "w" / "bye.py").exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"task": "x", "working_dir": "../outside"}, 403),
        ({"task": "x", "working_dir": "/tmp"}, 403),
        ({"task": "x", "working_dir": "escape"}, 403),  # a symlink out of the root
        ({"task": "x", "working_dir": "w", "screenshots": [{"path": "/etc/hostname"}]}, 403),
        ({"task": "x", "working_dir": "w", "screenshots": [{"path": "escape/shot.png"}]}, 403),
        ({"working_dir": "w"}, 400),
        ({"task": "x", "unknown": 1}, 400),
        ({"task": "x", "parallel": "many"}, 400),
        ({"task": " ", "working_dir": "w"}, 400),
        ({"task": "x", "working_dir": "w", "agent": "cursor"}, 400),
        ({"task": "x", "working_dir": "w", "agents": ["claude", "nope"]}, 400),
        ({"task": "x", "working_dir": "w", "best_of": 0}, 400),
    ],
)
def test_refused_task_requests_are_4xx_with_a_json_error(
    tmp_path: Path, server_with: Callable[..., Server], body: dict[str, Any], status: int
) -> None:
    server = server_with(scripted_agent(tmp_path, WRITES_HELLO))
    (server.root / "escape").symlink_to(tmp_path)
    with server.client() as client:
        response = client.post("/task", json=body)
        assert response.status_code == status, response.text
        assert response.json()["status_code"] == status and response.json()["detail"]
    assert not (tmp_path / "outside").exists()


def test_malformed_and_oversized_bodies_and_unknown_sessions_are_4xx(
    tmp_path: Path, server_with: Callable[..., Server]
) -> None:
    server = server_with(scripted_agent(tmp_path, WRITES_HELLO))
    with server.client() as client:
        assert (
            client.post("/task", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
        )
        huge = client.post("/task", json={"task": "x" * (2 * 1024 * 1024)})
        assert huge.status_code == 413
        assert client.get("/session/nosuchsession").status_code == 404
        assert client.post("/stop", json={"session_id": "nosuchsession"}).status_code == 404
        bad_id = client.get("/session/nosuch/events", headers={"Last-Event-ID": "x"})
        assert bad_id.status_code in (400, 404)


def test_off_loopback_every_call_needs_the_token(tmp_path: Path, server_with: Callable[..., Server]) -> None:
    server = server_with(scripted_agent(tmp_path, WRITES_HELLO), host="0.0.0.0")
    token_file = server.home / "config" / "server-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    server.token = token_file.read_text().strip()
    plain = httpx.get(f"{server.url}/health")
    assert plain.status_code == 401 and plain.json()["status_code"] == 401
    assert httpx.get(f"{server.url}/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with server.client() as client:
        assert client.get("/health").status_code == 200
    os.killpg(server.process.pid, 15)
    server.process.wait(15)
    assert server.process.stderr is not None
    assert server.process.stderr.read().count(server.token) == 1  # printed once, when it was made


def test_off_loopback_the_dashboards_page_loads_without_the_token_and_asks_for_it(
    tmp_path: Path, server_with: Callable[..., Server]
) -> None:
    server = server_with(scripted_agent(tmp_path, WRITES_HELLO), host="0.0.0.0")
    for asset in ("/", "/app.js", "/style.css"):
        assert httpx.get(f"{server.url}{asset}").status_code == 200, asset
    assert httpx.get(f"{server.url}/sessions").status_code == 401
