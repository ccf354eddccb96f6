"""The dashboard in real headless Chromium (Debian's, driven by Python Playwright).

Against a live pa-server whose agents are the REAL Claude Code CLI talking to the fake Anthropic API: a task
started from the page streams into its timeline, the stop button ends it `interrupted`, and a task left alone
ends `done` and is listed with its cost. Against a scripted stream (page.route): the page parses SSE as a
browser must, resumes a dropped stream after its Last-Event-ID, and asks for the bearer token after a 401.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import Delay, FakeAnthropic, Text, ToolUse, write_file

pytest.importorskip("playwright", reason="Python Playwright is not installed")
from playwright.sync_api import Browser, Locator, Page, Route, ViewportSize, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
STATIC = Path(__file__).parents[2] / "agentproxy" / "server" / "static"
BUILD = Path(__file__).parents[2] / "build"
START_TIMEOUT_S = 30.0
RUN_TIMEOUT_MS = 90_000  # a whole run: the CLI's start, its turns, the review
STOP_TIMEOUT_MS = 30_000
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}

pytestmark = [
    pytest.mark.claude_cli,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The directory pa-server starts in, so its allowed root; the tasks' project is in it."""
    directory = tmp_path / "root"
    (directory / "project").mkdir(parents=True)
    return directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def pa_server(api: FakeAnthropic, root: Path, tmp_path: Path) -> Iterator[str]:
    """A live pa-server on a free loopback port, its agents the real CLI against ``api``; yields its URL."""
    port = free_port()
    env = {
        **isolated_claude_env(api.url, tmp_path / "claude-home"),
        "AGENTPROXY_HOME": str(tmp_path / "agentproxy-home"),
        "CLAUDE_BIN": find_claude_bin() or "claude",
    }
    log = tmp_path / "pa-server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "agentproxy.server", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, log)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        print(f"pa-server's output:\n{log.read_text()[-5000:]}")  # shown when the test fails


def wait_for_health(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"pa-server exited {server.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=1).json().get("status") == "healthy":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"pa-server did not answer /health in {START_TIMEOUT_S:.0f}s:\n{log.read_text()[-3000:]}")


def start_task(page: Page, task: str, working_dir: str) -> None:
    page.get_by_test_id("task-input").fill(task)
    page.get_by_test_id("workdir-input").fill(working_dir)
    page.get_by_test_id("start-button").click()


def events_of(page: Page, kind: str) -> Locator:
    return page.get_by_test_id("timeline").locator(f'[data-testid="timeline-event"][data-kind="{kind}"]')


def listed(page: Page, session_id: str) -> Locator:
    return page.locator(f'[data-testid="session-item"][data-session-id="{session_id}"]')


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    """Into the test's directory, and into build/ where it outlives the run."""
    BUILD.mkdir(exist_ok=True)
    # A viewport as tall as the page: the sticky sidebar spans it all, as it would on a tall screen.
    page.set_viewport_size({"width": VIEWPORT["width"], "height": page.evaluate("document.body.scrollHeight")})
    page.screenshot(path=str(tmp_path / name))
    page.screenshot(path=str(BUILD / name))


def test_a_task_started_from_the_page_streams_its_events_and_the_stop_button_interrupts_it(
    page: Page, root: Path, tmp_path: Path
) -> None:
    agent = (
        ToolUse("Bash", {"command": "echo warming up"}),
        Delay(60, write_file("late.txt", "late\n")),
        Text("Done."),
    )
    with FakeAnthropic(*agent) as api, pa_server(api, root, tmp_path) as url:
        page.goto(url)
        start_task(page, "Write late.txt containing late", "project")

        expect(events_of(page, "subtask_started")).to_have_count(1, timeout=RUN_TIMEOUT_MS)
        bash = events_of(page, "agent_used_tool").filter(has_text="echo warming up")
        expect(bash).to_have_count(1, timeout=RUN_TIMEOUT_MS)
        expect(page.get_by_test_id("session-status")).to_have_text("running")
        session_id = page.get_by_test_id("session-id").inner_text()
        expect(listed(page, session_id)).to_have_attribute("data-status", "running")

        page.get_by_test_id("stop-button").click()
        expect(page.get_by_test_id("session-status")).to_have_text("interrupted", timeout=STOP_TIMEOUT_MS)
        expect(page.get_by_test_id("stop-button")).to_be_hidden()
        expect(events_of(page, "session_finished")).to_contain_text("interrupted")
        expect(listed(page, session_id)).to_have_attribute("data-status", "interrupted", timeout=STOP_TIMEOUT_MS)
        screenshot(page, tmp_path, "dashboard-stopped.png")
    assert not (root / "project" / "late.txt").exists()  # the delayed write never came


def test_a_task_left_alone_ends_done_and_is_listed_with_its_cost(page: Page, root: Path, tmp_path: Path) -> None:
    with (
        FakeAnthropic(Delay(3, write_file("hello.txt", "hi\n")), Text("Created hello.txt.")) as api,
        pa_server(api, root, tmp_path) as url,
    ):
        page.goto(url)
        start_task(page, "Create hello.txt containing hi", "project")

        expect(page.get_by_test_id("session-status")).to_have_text("done", timeout=RUN_TIMEOUT_MS)
        session_id = page.get_by_test_id("session-id").inner_text()
        [session] = [s for s in httpx.get(f"{url}/sessions").json()["sessions"] if s["id"] == session_id]
        assert session["status"] == "done" and session["cost_usd"] > 0

        expect(events_of(page, "agent_used_tool").filter(has_text="hello.txt")).to_have_count(1)
        expect(events_of(page, "agent_said").filter(has_text="Created hello.txt.")).to_have_count(1)
        expect(events_of(page, "subtask_finished").locator(".badge")).to_have_text("done")
        planned = page.locator('[data-testid="plan-subtask"][data-subtask-id="1"]')
        expect(planned).to_have_attribute("data-state", "done")
        item = listed(page, session_id)
        expect(item).to_have_attribute("data-status", "done", timeout=STOP_TIMEOUT_MS)
        expect(item.get_by_test_id("session-item-cost")).to_have_text(f"${session['cost_usd']:.4f}")
        expect(item.get_by_test_id("session-item-dir")).to_have_text(str((root / "project").resolve()))
        screenshot(page, tmp_path, "dashboard.png")
    assert (root / "project" / "hello.txt").read_text() == "hi\n"


# ---------------------------------------------------------------------------------------------
# The page's own logic against a scripted server: no pa-server, no agent.

ORIGIN = "http://dashboard.test"
TOKEN = "s3cret-token"
SESSION = {
    "id": "abc123",
    "task": "Say hello\nin two lines",
    "working_dir": "/srv/project",
    "status": "running",
    "reason": "",
    "cost_usd": 0.0,
    "created_at": 1_700_000_000.0,
    "updated_at": 1_700_000_000.0,
}


def sse_message(number: int | None, kind: str, fields: dict[str, Any], newline: str = "\n") -> str:
    """One SSE message whose JSON is split over several data: lines (a browser joins them with newlines)."""
    data = json.dumps({"kind": kind, "at": 1_700_000_000.0, **fields}, indent=1).splitlines()
    lines = ([f"id: {number}"] if number is not None else []) + [f"event: {kind}"] + [f"data: {d}" for d in data]
    return newline.join(lines) + newline * 2


class ScriptedServer:
    """Serves the dashboard's files and a session whose event stream drops after two events."""

    def __init__(self) -> None:
        self.stream_requests: list[dict[str, str]] = []
        self.unauthorized = 0

    def __call__(self, route: Route) -> None:
        request = route.request
        headers = request.all_headers()
        path = request.url.removeprefix(ORIGIN).split("?", 1)[0]
        if path in ("/", "/app.js", "/style.css"):
            name = "index.html" if path == "/" else path.lstrip("/")
            route.fulfill(path=str(STATIC / name))
        elif headers.get("authorization") != f"Bearer {TOKEN}":
            self.unauthorized += 1
            route.fulfill(status=401, json={"status_code": 401, "detail": "a bearer token is needed"})
        elif path == "/health":
            route.fulfill(json={"status": "healthy", "active_sessions": 1})
        elif path == "/sessions":
            route.fulfill(json={"sessions": [SESSION]})
        elif path == f"/session/{SESSION['id']}":
            route.fulfill(json={**SESSION, "tasks": [SESSION["task"]], "subtasks": []})
        elif path == f"/session/{SESSION['id']}/events":
            self.stream_requests.append(headers)
            route.fulfill(headers={"Content-Type": "text/event-stream"}, body=self.stream(headers))
        else:
            route.fulfill(status=404, json={"status_code": 404, "detail": "not found"})

    def stream(self, headers: dict[str, str]) -> str:
        if headers.get("last-event-id") is None:  # the first connection: two events, then the stream drops
            return (
                ": a keep-alive comment\n\n"
                + sse_message(1, "session_started", {"task": SESSION["task"], "working_dir": "/srv/project"}, "\r\n")
                + sse_message(2, "subtask_started", {"subtask_id": "1", "title": "Say hello"}, "\r")
            )
        said = sse_message(3, "agent_said", {"subtask_id": "1", "text": "Hello,\nworld <b>not bold</b>"})
        finished = sse_message(4, "session_finished", {"status": "done", "cost_usd": 0.25, "duration_s": 3.0})
        done = sse_message(None, "done", {"session_id": "abc123", "status": "done", "cost_usd": 0.25, "commit": None})
        return ": resumed\n" + said + finished + done


def test_the_page_asks_for_the_token_parses_sse_and_resumes_a_dropped_stream_after_its_last_id(page: Page) -> None:
    server = ScriptedServer()
    page.route(f"{ORIGIN}/**", server)
    page.goto(f"{ORIGIN}/#/session/{SESSION['id']}")

    expect(page.get_by_test_id("token-dialog")).to_be_visible()
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("token-submit").click()

    expect(page.get_by_test_id("session-status")).to_have_text("done")
    kinds = page.get_by_test_id("timeline").locator('[data-testid="timeline-event"]')
    expect(kinds).to_have_count(4)
    assert [k.get_attribute("data-kind") for k in kinds.all()] == [
        "session_started",
        "subtask_started",
        "agent_said",
        "session_finished",
    ]
    said = events_of(page, "agent_said").locator(".text")
    assert said.inner_text() == "Hello,\nworld <b>not bold</b>"  # text, never markup
    assert said.locator("b").count() == 0
    assert [h.get("last-event-id") for h in server.stream_requests] == [None, "2"]
    assert all(h.get("authorization") == f"Bearer {TOKEN}" for h in server.stream_requests)
    expect(page.get_by_test_id("session-item")).to_have_count(1)
    expect(page.get_by_test_id("session-task")).to_have_text("Say hello")

    asked = server.unauthorized
    page.reload()  # the token is kept: no second 401, no dialog
    expect(page.get_by_test_id("session-status")).to_have_text("done")
    expect(page.get_by_test_id("token-dialog")).to_be_hidden()
    assert server.unauthorized == asked
