"""ExecWorker: one agent of a vendor whose CLI runs a process per turn (Codex, the Gemini CLI) on one subtask.

Each turn starts the CLI with the turn's prompt; a follow-up resumes the same agent session by its id.
The CLI's stdout lines arrive as AgentLines from a reader thread and its backend's StreamReader turns
them into vendor-neutral readings; a ticker tells WatchdogTick, on which the worker decides whether the
agent is silent or over its time. These CLIs have no channel for questions or tool approvals while a
turn runs: a final answer that is really a question goes to the Clarifier and its answer is the next
turn; an agent that repeats itself is stopped and resumed with a refocus once, then failed as stuck; a
turn ended by a rate or usage limit pauses on a timer and then continues the same agent session.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import msgspec
from agentproxy.actors.base import CLARIFIER, DISPATCHER, Directory, SupervisedActor, tell_quietly

from agentproxy.agents import backend as readings
from agentproxy.agents.backend import ExecBackend, StreamReader, TurnEnded
from agentproxy.agents.clarifications import Clarifications, Steps
from agentproxy.agents.claude_turns import CONTINUE_AFTER_PAUSE, AgentActivity, tool_detail
from agentproxy.agents.process import AgentProcess
from agentproxy.agents.session_costs import SessionCosts
from agentproxy.agents.turn_clock import Pauses, PauseTooLong, Ticker, TurnClock
from agentproxy.child_env import BRAIN_KEY_VARIABLES, child_environment
from agentproxy.errors import AgentError
from agentproxy.messages import (
    AgentExited,
    AgentFinished,
    AgentLines,
    AgentSaid,
    AgentSessionOpened,
    AgentStarted,
    AgentUsedTool,
    Answer,
    Cancel,
    FollowUp,
    Interrupt,
    Notice,
    PauseOver,
    Restarted,
    RunSubtask,
    SpawnAgent,
    Spent,
    Stuck,
    SubtaskDone,
    Usage,
    WatchdogTick,
)
from agentproxy.options import RunOptions
from agentproxy.rate_limits import Limit, limit_of

WATCHDOG_TICK_S = 0.25
EXIT_AFTER_END_S = 10.0  # a CLI that said its turn is over gets this long to save its session and exit


class ExecWorker(SupervisedActor):
    def __init__(self, name: str, directory: Directory, options: RunOptions, backend: ExecBackend) -> None:
        super().__init__(name, directory)
        self.options = options
        self.backend = backend
        self.process: AgentProcess | None = None
        self.processes_started = 0  # the current process's number: what an old one still says is ignored
        self.reader: StreamReader | None = None
        self.ticker: Ticker | None = None
        self.subtask_id = ""
        self.task = ""
        self.cwd = options.working_dir
        self.project_env: dict[str, str] = {}
        self.agent_session_id: str | None = None
        self.model = options.model or ""
        self.turn_open = False
        self.last_turn = ""
        self.subtask_prompt = ""  # the subtask's first turn: a new session after a failed resume is told it again
        self.resuming: str | None = None  # the agent session this turn resumed, until a turn of it goes through
        self.ended: TurnEnded | None = None  # what the turn's stream said, while the process exits
        self.ended_at = 0.0
        self.costs = SessionCosts(backend, options.agent_prices)
        self.activity = AgentActivity(options.stuck_repeats)
        self.clarifications = Clarifications(name, options, self.activity)
        self.clock = TurnClock(options.silence_timeout_s, options.agent_timeout_s)
        over = functools.partial(tell_quietly, self.actor_ref)  # on the pause's timer thread
        self.pauses = Pauses(options.rate_limit_first_wait_s, options.rate_limit_max_wait_s, on_over=over)

    def on_receive(self, message: Any) -> Any:
        match message:
            case SpawnAgent():
                self.take_subtask(
                    message.subtask_id, message.task, message.cwd, message.env, message.resume_agent_session
                )
            case RunSubtask():
                self.take_subtask(
                    message.subtask.id, message.task, message.cwd, message.env, message.resume_agent_session
                )
                self.costs.total_usd = max(self.costs.total_usd, message.cost_so_far_usd)
                self.subtask_prompt = message.prompt
                self.start_turn(message.prompt)
            case FollowUp(instruction=instruction):
                self.start_turn(instruction)
            case AgentLines(lines=lines, process=number):
                with self.recording_together():
                    for line in lines:
                        if not self.is_current(number):
                            break  # a loop or a limit ended this process's turn: the rest of its lines is moot
                        self.on_line(line)
            case AgentExited(returncode=code, process=number) if self.is_current(number):
                self.on_exited(code)
            case WatchdogTick():
                self.on_tick()
            case PauseOver(pause=pause) if self.pauses.is_current(pause):
                self.pauses.end()
                if self.turn_open:
                    self.start_turn(CONTINUE_AFTER_PAUSE.format(reason=self.pauses.reason))
            case Answer():
                self.carry_out(self.clarifications.answered(message))
            case Restarted(name=name) if name == CLARIFIER:
                for request in self.clarifications.requests():
                    self.tell(CLARIFIER, request)
            case Interrupt(reason=reason) if self.turn_open:
                # No channel into a running turn: it stops by being killed; the CLI keeps its session.
                self.record(Notice(level="warning", text=f"stopping the agent of {self.subtask_id}: {reason}"))
                self.fail_turn(f"interrupted: {reason}")
            case Cancel(reason=reason):
                self.fail_turn(reason)
        return None

    def take_subtask(self, subtask_id: str, task: str, cwd: str, env: dict[str, str], resume: str | None) -> None:
        self.subtask_id, self.task, self.cwd, self.project_env = subtask_id, task, Path(cwd), env
        self.agent_session_id = resume or self.agent_session_id

    def is_current(self, number: int) -> bool:
        return self.process is not None and number == self.processes_started

    # -- a turn is a process -----------------------------------------------------------------

    def start_turn(self, text: str) -> None:
        self.turn_open, self.last_turn, self.ended = True, text, None
        self.resuming = self.agent_session_id
        self.reader = self.backend.reader()
        self.stop_process()
        argv = self.backend.turn_argv(
            self.options.command_for(self.backend.name),
            text,
            cwd=self.cwd,
            resume=self.agent_session_id,
            model=self.options.model,
        )
        ref, env = self.actor_ref, self.environment()
        self.processes_started = number = self.processes_started + 1
        try:
            self.process = AgentProcess(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=False,
                on_lines=lambda lines: tell_quietly(
                    ref, AgentLines(lines=[line.decode("utf-8", "replace") for line in lines], process=number)
                ),
                on_exit=lambda code: tell_quietly(ref, AgentExited(returncode=code, process=number)),
            )
        except AgentError as exc:
            self.fail_turn(str(exc))
            return
        self.model = self.model or self.backend.configured_model(env)
        self.clock.start(time.monotonic())
        if self.ticker is None:
            tick = functools.partial(tell_quietly, ref, WatchdogTick())
            self.ticker = Ticker(WATCHDOG_TICK_S, tick, f"watchdog-{self.name}")

    def environment(self) -> dict[str, str]:
        """The user's environment without the supervisor's keys, unless the user shares the Gemini key."""
        shared = {key: os.environ[key] for key in BRAIN_KEY_VARIABLES if key in os.environ}
        base = child_environment(self.options.agent_env)
        env = self.backend.environment(base, brain_key=shared if self.options.share_gemini_key else {})
        return {**env, **self.project_env}

    def stop_process(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None

    def release(self) -> None:
        self.pauses.end()
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None
        self.stop_process()

    def on_tick(self) -> None:
        now = time.monotonic()
        if self.ended is not None and now - self.ended_at > EXIT_AFTER_END_S:
            self.stop_process()  # it said its turn is over and lingers: done all the same
            self.finish(self.ended)
            return
        waiting, paused = bool(self.clarifications), self.pauses.active
        reason = self.clock.overrun(now, turn_open=self.turn_open, waiting=waiting, paused=paused)
        if reason is not None:
            self.fail_turn(reason)

    # -- what the agent says -----------------------------------------------------------------

    def on_line(self, line: str) -> None:
        self.clock.heard(time.monotonic())
        assert self.reader is not None
        for reading in self.reader.read(line):
            match reading:
                case readings.Opened(session_id=session_id, model=model):
                    self.on_opened(session_id, model)
                case readings.Said(text=text) if text.strip():
                    self.activity.transcript.append(text)
                    self.record(AgentSaid(subtask_id=self.subtask_id, text=text))
                case readings.UsedTool():
                    self.on_tool(reading)
                case readings.ToolReturned(id=call_id, output=output, is_error=is_error):
                    if loop := self.activity.detector.returned(call_id, output, is_error):
                        self.on_loop(loop)
                case readings.TurnEnded() if self.ended is None:
                    self.ended, self.ended_at = reading, time.monotonic()
                case readings.Unreadable(error=error):
                    self.record(Notice(level="warning", text=f"unreadable agent output skipped: {error}"))

    def on_opened(self, session_id: str, model: str) -> None:
        self.model = model or self.model
        if not session_id or session_id == self.agent_session_id:
            return
        if self.agent_session_id is not None:
            self.costs.new_session()
        self.agent_session_id = session_id
        self.tell(DISPATCHER, AgentSessionOpened(subtask_id=self.subtask_id, agent_session_id=session_id))
        started = AgentStarted(
            subtask_id=self.subtask_id,
            agent_session_id=session_id,
            model=self.model,
            cwd=str(self.cwd),
            agent=self.backend.name,
        )
        self.record(started)

    def on_tool(self, used: readings.UsedTool) -> None:
        self.activity.detector.called(used.id, used.tool, used.input)
        self.activity.edited = self.activity.edited or used.edits
        self.activity.ran_commands = self.activity.ran_commands or used.runs_command
        detail = used.detail or tool_detail(used.input)
        self.activity.transcript.append(f"[{used.tool}] {detail}")
        self.record(AgentUsedTool(subtask_id=self.subtask_id, tool=used.tool, detail=detail))

    def on_exited(self, code: int | None) -> None:
        assert self.reader is not None and self.process is not None
        ended = self.ended or self.reader.at_exit(code, self.process.stderr_tail())
        if ended is None:
            tail = self.process.stderr_tail()[-300:]
            ended = TurnEnded(
                ok=False, error=f"agent exited with code {code} before finishing" + (f": {tail}" if tail else "")
            )
        self.process = None
        self.finish(ended)

    def finish(self, ended: TurnEnded) -> None:
        """The turn's outcome: its cost first, then done, asked back, started afresh or failed."""
        self.ended = None
        self.charge(ended)
        if not self.turn_open:
            return
        if ended.ok:
            self.resuming = None
            self.pauses.went_through()
            if (asking := self.clarifications.final_answer(ended.text, self.subtask_id, self.task)) is not None:
                self.carry_out(asking)
            else:
                self.report(SubtaskDone(subtask_id=self.subtask_id, ok=True, summary=ended.text))
        elif (limit := limit_of(ended.api_error_status, "", ended.error, None, time.time())) is not None:
            self.pause(limit)
        elif self.resuming and not ended.input_tokens:
            self.start_afresh(ended.error)  # the CLI could not take the session up again: nothing was spent in it
        else:
            self.fail_turn(f"agent failed: {ended.error}")

    def charge(self, ended: TurnEnded) -> None:
        """Record the turn's use and tell the Dispatcher what it cost."""
        ended, cost = self.costs.turn(ended, self.model)
        usage = Usage(input_tokens=ended.input_tokens, output_tokens=ended.output_tokens, cost_usd=cost)
        self.record(
            AgentFinished(
                subtask_id=self.subtask_id,
                agent_session_id=self.agent_session_id or "",
                is_error=not ended.ok,
                result=ended.text or ended.error,
                usage=usage,
                api_error_status=ended.api_error_status,
            )
        )
        self.tell(DISPATCHER, Spent(usd=cost, subtask_id=self.subtask_id, session_total_usd=self.costs.total_usd))

    def start_afresh(self, why: str) -> None:
        """The CLI cannot take the session up again (it never saved it, or a kill cut it): a new one starts in
        the same tree, told the subtask and then the turn it was to take."""
        self.record(Notice(level="warning", text=f"[{self.subtask_id}] agent session {self.resuming} could not be"
                           f" resumed ({why}); a new session takes the turn"))  # fmt: skip
        self.agent_session_id = None
        self.costs.new_session()
        turn = self.last_turn
        if self.subtask_prompt and turn != self.subtask_prompt:
            turn = f"{self.subtask_prompt}\n\n{turn}"
        self.start_turn(turn)

    # -- loops, failures, questions --------------------------------------------------------

    def on_loop(self, loop: str) -> None:
        """Stop the turn and resume the session with a refocus the first time; fail the subtask the second."""
        if not self.turn_open or (action := self.activity.on_loop(loop)) is None:
            return
        self.record(Stuck(subtask_id=self.subtask_id, pattern=loop, action=action))
        if action == "failed":
            self.fail_turn(f"stuck: {loop}, again after being refocused")
            return
        if (refocus := self.activity.refocus_turn()) is not None:
            self.start_turn(refocus)

    def pause(self, limit: Limit) -> None:
        """Wait out a rate or usage limit on a timer, then continue the same agent session; not an attempt."""
        try:
            self.record(self.pauses.begin(limit, self.subtask_id, time.time()))
        except PauseTooLong as exc:
            self.fail_turn(str(exc))

    def fail_turn(self, reason: str) -> None:
        """Kill the agent and report the subtask failed, once per turn."""
        self.pauses.end()
        self.stop_process()
        self.ended = None
        if not self.turn_open:
            return
        self.clarifications.clear()
        self.report(SubtaskDone(subtask_id=self.subtask_id, ok=False, reason=reason))

    def report(self, done: SubtaskDone) -> None:
        self.turn_open = False
        self.tell(DISPATCHER, msgspec.structs.replace(done, agent_session_id=self.agent_session_id))

    def carry_out(self, steps: Steps) -> None:
        for event in steps.events:
            self.record(event)
        if steps.to_clarifier is not None:
            self.tell(CLARIFIER, steps.to_clarifier)
        if steps.turn is not None:
            self.start_turn(steps.turn)
