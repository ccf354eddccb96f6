"""ClaudeWorker: one Claude Code process working on one subtask, driven through stream-json.

Its mailbox never blocks: the process's stdout lines arrive as AgentLine messages from a reader
thread, and a watchdog thread sends WatchdogFired when the agent is silent or over its time.
Tool approvals follow the ApprovalPolicy; questions (AskUserQuestion, or a final answer that is
really a question) go to the Clarifier and its answer goes back in-band. An agent that repeats itself
is interrupted and refocused once, then failed as stuck; a turn that ends on a rate or usage limit
pauses on a timer thread and then continues the same agent session.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import random
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pykka
from agentproxy.actors.base import CLARIFIER, DISPATCHER, Directory, SupervisedActor

from agentproxy.agents import claude_stream as wire
from agentproxy.agents.claude import ClaudeProcess, agent_environment, headless_argv
from agentproxy.agents.claude_tools import EDIT_TOOLS, is_question_tool
from agentproxy.errors import AgentError
from agentproxy.loops import StuckDetector
from agentproxy.messages import (
    AgentExited,
    AgentFinished,
    AgentLine,
    AgentPaused,
    AgentQuestion,
    AgentRetrying,
    AgentSaid,
    AgentSessionOpened,
    AgentStarted,
    AgentUsedTool,
    Answer,
    Ask,
    Cancel,
    FollowUp,
    JudgeTool,
    Notice,
    Option,
    PauseOver,
    QuestionAsked,
    Restarted,
    RunSubtask,
    SpawnAgent,
    Stuck,
    SubtaskDone,
    ToolDecided,
    ToolVerdict,
    Usage,
    WatchdogFired,
)
from agentproxy.options import RunOptions
from agentproxy.rate_limits import Limit, limit_of, pause_s

WATCHDOG_TICK_S = 0.25
TRANSCRIPT_TAIL_CHARS = 4000
FINAL_QUESTION_PREFIX = "final-question:"
REFOCUS = (
    "Stop. You are repeating yourself: {loop}. Doing it again will not give a different result. "
    "Step back, say in one sentence why it is not working, then take a different approach to the task."
)
CONTINUE_AFTER_PAUSE = (
    "The API limit that stopped your last turn has passed ({reason}). Continue the task where you left off."
)


class ClaudeWorker(SupervisedActor):
    def __init__(self, name: str, directory: Directory, options: RunOptions) -> None:
        super().__init__(name, directory)
        self.options = options
        self.process: ClaudeProcess | None = None
        self.subtask_id = ""
        self.task = ""
        self.cwd = options.working_dir
        self.project_env: dict[str, str] = {}  # the project's environment the checks run in: the agent's too
        self.spawned_idle = False  # a process started by SpawnAgent waits for its first turn
        self.agent_session_id: str | None = None
        self.turn_open = False  # a turn was sent and its outcome not yet reported
        self.question_follow_ups = 0
        self.detector = StuckDetector(options.stuck_repeats)
        self.loops_seen = 0
        self.refocus_pending: str | None = None  # the loop an interrupt was sent for; refocus when the turn ends
        self.pauses_in_a_row = 0
        self.pause_timer: threading.Timer | None = None
        self.limit_reason = ""
        self.limit_lifts_at: float | None = None  # from a rejected rate_limit_event
        self.edited = False  # the agent used an edit tool in this subtask
        self.ran_commands = False
        self.unreported_cost_usd = 0.0
        self.pending: dict[str, PendingRequest] = {}  # request_id -> Ask/JudgeTool awaiting the Clarifier
        self.tool_inputs: dict[str, dict[str, Any]] = {}  # request_id -> the input of an AskUserQuestion
        self.transcript: collections.deque[str] = collections.deque(maxlen=200)
        self.last_output_at = self.turn_started_at = time.monotonic()
        self.watchdog_stop = threading.Event()
        self.watchdog: threading.Thread | None = None

    # -- mailbox ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case SpawnAgent():
                self.on_spawn(message)
            case RunSubtask():
                self.on_run_subtask(message)
            case FollowUp():
                self.on_follow_up(message)
            case AgentLine(line=line):
                self.on_agent_line(line)
            case AgentExited(returncode=code):
                self.on_agent_exited(code)
            case WatchdogFired(reason=reason):
                self.fail_turn(reason)
            case PauseOver(pause=pause):
                self.on_pause_over(pause)
            case Answer():
                self.on_answer(message)
            case ToolVerdict():
                self.on_tool_verdict(message)
            case Restarted(name=name) if name == CLARIFIER:
                for request in self.pending.values():
                    self.directory.tell(CLARIFIER, request)
            case Cancel(reason=reason):
                self.fail_turn(reason)
        return None

    def on_spawn(self, spawn: SpawnAgent) -> None:
        """Start the agent's process ahead of its first turn; a failure here is reported by that turn."""
        self.subtask_id, self.task, self.cwd = spawn.subtask_id, spawn.task, Path(spawn.cwd)
        self.project_env = spawn.env
        self.agent_session_id = spawn.resume_agent_session or self.agent_session_id
        with contextlib.suppress(AgentError):
            self.start_process(resume=self.agent_session_id)
            self.spawned_idle = True

    def on_run_subtask(self, run: RunSubtask) -> None:
        ready = self.spawned_idle and self.process is not None and self.process.alive and self.project_env == run.env
        self.spawned_idle = False
        self.subtask_id = run.subtask.id
        self.task = run.task
        self.cwd = Path(run.cwd)
        self.project_env = run.env
        self.agent_session_id = run.resume_agent_session or self.agent_session_id
        self.start_turn(run.prompt, fresh_process=not ready)

    def on_follow_up(self, follow_up: FollowUp) -> None:
        self.start_turn(follow_up.instruction, fresh_process=self.process is None or not self.process.alive)

    def start_turn(self, text: str, fresh_process: bool) -> None:
        self.turn_open = True
        if fresh_process:
            try:
                self.start_process(resume=self.agent_session_id)
            except AgentError as exc:
                self.fail_turn(str(exc))
                return
        self.send_turn(text)

    # -- the agent process -----------------------------------------------------------------

    def start_process(self, resume: str | None) -> None:
        if self.process is not None:
            self.process.kill()
        env = {**agent_environment(self.options.agent_env), **self.project_env}
        argv = headless_argv(self.options.agent_command, resume=resume, model=self.options.model)
        ref = self.actor_ref
        self.process = ClaudeProcess(
            argv,
            cwd=self.cwd,
            env=env,
            on_line=lambda line: _tell_quietly(ref, AgentLine(line=line.decode("utf-8", "replace"))),
            on_exit=lambda code: _tell_quietly(ref, AgentExited(returncode=code)),
        )
        warm_up()
        self.start_watchdog()

    def send_turn(self, text: str) -> None:
        self.turn_open = True
        # The limits count the agent's own time: not the checks and reviews between its turns.
        self.turn_started_at = self.last_output_at = time.monotonic()
        assert self.process is not None
        if not self.process.send(wire.user_turn(text)):
            self.fail_turn(f"the agent stopped reading its input: {self.process.stderr_tail()[-300:]}")

    def start_watchdog(self) -> None:
        self.watchdog_stop.set()
        if self.watchdog is not None:
            self.watchdog.join(timeout=1.0)
        self.watchdog_stop = threading.Event()
        self.watchdog = threading.Thread(
            target=self._watch, args=(self.watchdog_stop,), name=f"watchdog-{self.name}", daemon=True
        )
        self.watchdog.start()

    def _watch(self, stop: threading.Event) -> None:
        """Runs on the watchdog thread: tells the actor once when the agent is silent or too slow."""
        options = self.options
        while not stop.wait(WATCHDOG_TICK_S):
            if not self.turn_open or self.pending or self.pause_timer is not None:
                continue  # idle between turns, waiting on the Clarifier, or paused: not the agent's fault
            now = time.monotonic()
            if now - self.last_output_at > options.silence_timeout_s:
                reason = f"agent silent for {options.silence_timeout_s:g}s; killed"
            elif now - self.turn_started_at > options.agent_timeout_s:
                reason = f"agent turn over its time limit of {options.agent_timeout_s:g}s; killed"
            else:
                continue
            _tell_quietly(self.actor_ref, WatchdogFired(reason=reason))
            return

    def release(self) -> None:
        self.end_pause()
        self.watchdog_stop.set()
        if self.process is not None:
            self.process.close()
            self.process = None

    # -- what the agent says ---------------------------------------------------------------

    def on_agent_line(self, raw: str) -> None:
        self.last_output_at = time.monotonic()
        match wire.parse_line(raw):
            case wire.SystemLine(subtype="init") as init:
                self.on_init(init)
            case wire.SystemLine(subtype="api_retry") as retry:
                self.record(
                    AgentRetrying(
                        subtask_id=self.subtask_id,
                        attempt=retry.attempt,
                        error_status=retry.error_status,
                        delay_ms=int(retry.retry_delay_ms),
                    )
                )
            case wire.AssistantLine(message=message):
                for block in message.content:
                    self.on_content(block)
            case wire.UserLine() as echo:
                for tool_result in echo.tool_results():
                    if loop := self.detector.returned(
                        tool_result.tool_use_id, tool_result.content, tool_result.is_error
                    ):
                        self.on_loop(loop)
            case wire.ControlRequestLine() as request:
                self.on_control_request(request)
            case wire.ResultLine() as result:
                self.on_result(result)
            case wire.RateLimitLine(rate_limit_info=info) if info.status == "rejected":
                self.limit_lifts_at = float(info.resetsAt) if info.resetsAt else None
            case wire.MalformedLine(error=error):
                self.record(Notice(level="warning", text=f"unreadable agent output skipped: {error}"))
            # Anything else (user echoes, other system lines, lines of a newer CLI) needs no action.

    def on_init(self, init: wire.SystemLine) -> None:
        if init.session_id and init.session_id != self.agent_session_id:
            self.agent_session_id = init.session_id
            self.directory.tell(
                DISPATCHER, AgentSessionOpened(subtask_id=self.subtask_id, agent_session_id=init.session_id)
            )
            self.record(
                AgentStarted(
                    subtask_id=self.subtask_id, agent_session_id=init.session_id, model=init.model, cwd=init.cwd
                )
            )

    def on_content(self, block: wire.ContentBlock) -> None:
        if block.type == "text" and block.text.strip():
            self.transcript.append(block.text)
            self.record(AgentSaid(subtask_id=self.subtask_id, text=block.text))
        elif block.type == "tool_use":
            self.detector.called(block.id, block.name, block.input)
            self.edited = self.edited or block.name in EDIT_TOOLS
            self.ran_commands = self.ran_commands or block.name == "Bash"
            self.transcript.append(f"[{block.name}] {_tool_detail(block.input)}")
            self.record(AgentUsedTool(subtask_id=self.subtask_id, tool=block.name, detail=_tool_detail(block.input)))

    def on_control_request(self, line: wire.ControlRequestLine) -> None:
        request = line.request
        if request.subtype != "can_use_tool":
            self._send(wire.control_error(line.request_id, f"unsupported control request {request.subtype!r}"))
            return
        if is_question_tool(request.tool_name):
            self.ask_clarifier(line.request_id, _questions_from_tool(request.input), request.input, via="tool")
            return
        from agentproxy.policy import ApprovalPolicy  # lazy: see warm_up

        decision = ApprovalPolicy(self.cwd, self.options.deny_patterns, allow_tools=self.options.allow_tools).decide(
            request.tool_name, request.input
        )
        if decision.verdict == "ask":
            judge = JudgeTool(
                worker=self.name,
                subtask_id=self.subtask_id,
                request_id=line.request_id,
                tool_name=request.tool_name,
                tool_input=request.input,
                task=self.task,
            )
            self.pending[line.request_id] = judge
            self.tool_inputs[line.request_id] = request.input
            self.directory.tell(CLARIFIER, judge)
            return
        self.answer_tool(
            line.request_id, request.tool_name, request.input, decision.verdict == "allow", decision.reason
        )

    def answer_tool(self, request_id: str, tool: str, tool_input: dict[str, Any], allow: bool, reason: str) -> None:
        self.record(ToolDecided(subtask_id=self.subtask_id, tool=tool, allowed=allow, reason=reason))
        self._send(wire.allow(request_id, tool_input) if allow else wire.deny(request_id, reason))

    def on_result(self, result: wire.ResultLine) -> None:
        text = result.result or ""
        self.record(
            AgentFinished(
                subtask_id=self.subtask_id,
                agent_session_id=result.session_id or self.agent_session_id or "",
                is_error=result.is_error,
                result=text,
                usage=Usage(
                    input_tokens=result.usage.input_tokens,
                    output_tokens=result.usage.output_tokens,
                    cost_usd=result.total_cost_usd,
                ),
                num_turns=result.num_turns,
                api_error_status=result.api_error_status,
            )
        )
        self.unreported_cost_usd += result.total_cost_usd
        if not self.turn_open:
            return
        if self.refocus_pending is not None:
            loop, self.refocus_pending = self.refocus_pending, None
            self.detector.forget()
            self.send_turn(REFOCUS.format(loop=loop))
            return
        if result.is_error:
            limit = limit_of(result.api_error_status, result.api_error_type, text, self.limit_lifts_at, time.time())
            if limit is not None:
                self.pause(limit)
                return
            status = f"API error {result.api_error_status}: " if result.api_error_status else ""
            self.fail_turn(f"agent failed ({result.subtype or 'error'}): {status}{text.strip()[:300]}")
            return
        from agentproxy.questions import looks_like_question, question_from_text  # lazy, as ApprovalPolicy

        self.pauses_in_a_row = 0
        if self.question_follow_ups < self.options.max_question_follow_ups and looks_like_question(
            text, made_changes=self.made_changes()
        ):
            self.question_follow_ups += 1
            request_id = f"{FINAL_QUESTION_PREFIX}{self.question_follow_ups}"
            self.ask_clarifier(request_id, [question_from_text(text)], None, via="final_text")
            return
        self.report(SubtaskDone(subtask_id=self.subtask_id, ok=True, summary=text))

    def made_changes(self) -> bool | None:
        """Whether the agent changed anything: edits say yes; commands alone may or may not have."""
        if self.edited:
            return True
        return None if self.ran_commands else False

    # -- loops and limits ------------------------------------------------------------------

    def on_loop(self, loop: str) -> None:
        """Interrupt the turn and refocus the agent the first time; fail the subtask the second."""
        if self.refocus_pending is not None or not self.turn_open:
            return
        self.loops_seen += 1
        if self.loops_seen > 1:
            self.record(Stuck(subtask_id=self.subtask_id, pattern=loop, action="failed"))
            self.fail_turn(f"stuck: {loop}, again after being refocused")
            return
        self.record(Stuck(subtask_id=self.subtask_id, pattern=loop, action="refocus"))
        self.refocus_pending = loop
        self._send(wire.interrupt(f"refocus-{self.loops_seen}"))

    def pause(self, limit: Limit) -> None:
        """Wait out a rate or usage limit on a timer; the turn stays open and is not an attempt."""
        self.pauses_in_a_row += 1
        now = time.time()
        wait = pause_s(limit, self.pauses_in_a_row, self.options.rate_limit_first_wait_s, now, random.Random())
        self.limit_lifts_at = None
        if wait > self.options.rate_limit_max_wait_s:
            self.fail_turn(
                f"{limit.reason}; it lifts in {wait:.0f}s, past the longest pause allowed"
                f" ({self.options.rate_limit_max_wait_s:g}s, --max-rate-limit-wait)"
            )
            return
        self.record(
            AgentPaused(subtask_id=self.subtask_id, reason=limit.reason, wait_s=round(wait, 1), until=now + wait)
        )
        self.limit_reason = limit.reason
        timer = threading.Timer(wait, _tell_quietly, args=(self.actor_ref, PauseOver(pause=self.pauses_in_a_row)))
        timer.daemon = True
        timer.start()
        self.pause_timer = timer

    def on_pause_over(self, pause: int) -> None:
        if self.pause_timer is None or pause != self.pauses_in_a_row:
            return  # a timer of a pause already ended (cancelled, or superseded)
        self.end_pause()
        if self.turn_open:
            text = CONTINUE_AFTER_PAUSE.format(reason=self.limit_reason)
            self.start_turn(text, fresh_process=self.process is None or not self.process.alive)

    def end_pause(self) -> None:
        if self.pause_timer is not None:
            self.pause_timer.cancel()
            self.pause_timer = None

    def on_agent_exited(self, code: int | None) -> None:
        if self.turn_open:
            tail = self.process.stderr_tail()[-300:] if self.process else ""
            self.fail_turn(f"agent exited with code {code} before finishing" + (f": {tail}" if tail else ""))

    def fail_turn(self, reason: str) -> None:
        """Kill the agent and report the subtask failed, once per turn."""
        self.end_pause()
        if self.process is not None:
            self.process.kill()
        if not self.turn_open:
            return
        self.pending.clear()
        self.report(SubtaskDone(subtask_id=self.subtask_id, ok=False, reason=reason))

    def report(self, done: SubtaskDone) -> None:
        """Close the turn and tell the Dispatcher how it went, with what it cost."""
        self.turn_open = False
        done = msgspec.structs.replace(done, agent_session_id=self.agent_session_id, cost_usd=self.unreported_cost_usd)
        self.unreported_cost_usd = 0.0
        self.directory.tell(DISPATCHER, done)

    # -- questions -------------------------------------------------------------------------

    def ask_clarifier(
        self, request_id: str, questions: list[AgentQuestion], tool_input: dict[str, Any] | None, via: str
    ) -> None:
        self.record(QuestionAsked(subtask_id=self.subtask_id, questions=questions, via=via))  # type: ignore[arg-type]
        ask = Ask(
            worker=self.name,
            subtask_id=self.subtask_id,
            request_id=request_id,
            questions=questions,
            task=self.task,
            transcript_tail="\n".join(self.transcript)[-TRANSCRIPT_TAIL_CHARS:],
        )
        self.pending[request_id] = ask
        if tool_input is not None:
            self.tool_inputs[request_id] = tool_input
        self.directory.tell(CLARIFIER, ask)

    def on_answer(self, answer: Answer) -> None:
        if self.pending.pop(answer.request_id, None) is None:
            return  # a late answer to a question of a turn that already ended
        if answer.request_id.startswith(FINAL_QUESTION_PREFIX):
            answers = "\n".join(f"{question}\n-> {reply}" for question, reply in answer.answers.items())
            self.send_turn(f"Answers to your question:\n{answers}\n\nGo ahead and finish the task.")
            return
        tool_input = self.tool_inputs.pop(answer.request_id, {})
        self._send(wire.allow(answer.request_id, {**tool_input, "answers": answer.answers}))

    def on_tool_verdict(self, verdict: ToolVerdict) -> None:
        judge = self.pending.pop(verdict.request_id, None)
        if not isinstance(judge, JudgeTool):
            return
        tool_input = self.tool_inputs.pop(verdict.request_id, {})
        self.answer_tool(verdict.request_id, judge.tool_name, tool_input, verdict.allow, verdict.reason)

    def _send(self, line: bytes) -> None:
        if self.process is None or not self.process.send(line):
            self.fail_turn("the agent stopped reading its input")


PendingRequest = Ask | JudgeTool


@functools.cache
def warm_up() -> None:
    """Once per process, while the first agent starts: load what its first tool call and final answer
    need (the policy's and the question detector's regexes, bashlex's parser tables: ~0.3 s)."""

    def load() -> None:
        from agentproxy import policy, questions, shell  # noqa: F401 - imported for their side effect

        shell.load_bashlex()

    threading.Thread(target=load, name="warm-up", daemon=True).start()


def _tell_quietly(ref, message) -> None:
    """Reader and watchdog threads outlive a stopped actor; their last words may go nowhere."""
    with contextlib.suppress(pykka.ActorDeadError):  # the actor was stopped or restarted
        ref.tell(message)


def _questions_from_tool(tool_input: dict[str, Any]) -> list[AgentQuestion]:
    questions = []
    for raw in tool_input.get("questions") or []:
        options = [
            Option(label=str(o.get("label", "")), description=str(o.get("description", "")))
            for o in raw.get("options") or []
            if isinstance(o, dict)
        ]
        questions.append(
            AgentQuestion(
                question=str(raw.get("question", "")),
                header=str(raw.get("header", "")),
                options=options,
                multi_select=bool(raw.get("multiSelect", False)),
            )
        )
    return questions


def _tool_detail(tool_input: dict[str, Any]) -> str:
    for key in ("file_path", "command", "path", "pattern", "url", "description"):
        if key in tool_input:
            return str(tool_input[key])[:200]
    return ""
