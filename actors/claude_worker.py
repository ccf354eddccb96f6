"""ClaudeWorker: one Claude Code process working on one subtask, driven through stream-json.

Its mailbox never blocks: the process's stdout lines arrive as AgentLines messages from a reader
thread, and a ticker thread tells it WatchdogTick, on which the worker decides on its own thread
whether the agent is silent or over its time. Tool approvals follow the ApprovalPolicy; questions
(AskUserQuestion, or a final answer that is really a question) go to the Clarifier and its answer goes
back in-band. An agent that repeats itself is interrupted and refocused once, then failed as stuck; a
turn that ends on a rate or usage limit pauses on a timer thread and then continues the same agent
session. What the agent's lines amount to is read in agents.claude_turns, its questions and tool approvals
are kept in agents.clarifications, its timing in agents.turn_clock.
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import Any

import msgspec
from agentproxy.actors.base import CLARIFIER, DISPATCHER, Directory, SupervisedActor, tell_quietly

from agentproxy.agents import claude_stream as wire
from agentproxy.agents import claude_turns as turns
from agentproxy.agents.clarifications import Clarifications, Steps, warm_up
from agentproxy.agents.claude import CLAUDE, agent_environment, headless_argv
from agentproxy.agents.process import AgentProcess
from agentproxy.agents.turn_clock import Pauses, PauseTooLong, Ticker, TurnClock
from agentproxy.errors import AgentError
from agentproxy.messages import (
    AgentExited,
    AgentLines,
    AgentSessionOpened,
    AgentStarted,
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
    ToolVerdict,
    WatchdogTick,
)
from agentproxy.options import RunOptions
from agentproxy.rate_limits import Limit

WATCHDOG_TICK_S = 0.25


class ClaudeWorker(SupervisedActor):
    def __init__(self, name: str, directory: Directory, options: RunOptions) -> None:
        super().__init__(name, directory)
        self.options = options
        self.process: AgentProcess | None = None
        self.ticker: Ticker | None = None  # tells the worker WatchdogTick while its process runs
        self.subtask_id = ""
        self.task = ""
        self.cwd = options.working_dir
        self.project_env: dict[str, str] = {}  # the project's environment the checks run in: the agent's too
        self.spawned_idle = False  # a process started by SpawnAgent waits for its first turn
        self.agent_session_id: str | None = None
        self.turn_open = False  # a turn was sent and its outcome not yet reported
        self.last_turn = ""  # what the agent was last told: a new session after a failed resume is told it again
        self.resuming: str | None = None  # the agent session the process resumed, until a turn of it goes through
        self.activity = turns.AgentActivity(options.stuck_repeats)
        self.clarifications = Clarifications(name, options, self.activity)  # what awaits the Clarifier
        over = functools.partial(tell_quietly, self.actor_ref)  # on the pause's timer thread
        self.pauses = Pauses(options.rate_limit_first_wait_s, options.rate_limit_max_wait_s, on_over=over)
        self.clock = TurnClock(options.silence_timeout_s, options.agent_timeout_s)

    # -- mailbox ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case SpawnAgent():
                self.on_spawn(message)
            case RunSubtask():
                self.on_run_subtask(message)
            case FollowUp():
                self.on_follow_up(message)
            case AgentLines(lines=lines):
                self.on_agent_lines(lines)
            case AgentExited(returncode=code):
                self.on_agent_exited(code)
            case WatchdogTick():
                self.on_tick()
            case PauseOver(pause=pause):
                self.on_pause_over(pause)
            case Answer():
                self.carry_out(self.clarifications.answered(message))
            case ToolVerdict():
                self.carry_out(self.clarifications.judged(message))
            case Restarted(name=name) if name == CLARIFIER:
                for request in self.clarifications.requests():
                    self.tell(CLARIFIER, request)
            case Interrupt(reason=reason):
                self.on_interrupt(reason)
            case Cancel(reason=reason):
                self.fail_turn(reason)
        return None

    def on_spawn(self, spawn: SpawnAgent) -> None:
        """Start the agent's process ahead of its first turn; a failure here is reported by that turn."""
        self.take_subtask(spawn.subtask_id, spawn.task, spawn.cwd, spawn.env, spawn.resume_agent_session)
        with contextlib.suppress(AgentError):
            self.start_process(resume=self.agent_session_id)
            self.spawned_idle = True

    def on_run_subtask(self, run: RunSubtask) -> None:
        ready = self.spawned_idle and self.process is not None and self.process.alive and self.project_env == run.env
        self.spawned_idle = False
        self.take_subtask(run.subtask.id, run.task, run.cwd, run.env, run.resume_agent_session)
        self.activity.session_cost_usd = max(self.activity.session_cost_usd, run.cost_so_far_usd)
        self.start_turn(run.prompt, fresh_process=not ready)

    def take_subtask(self, subtask_id: str, task: str, cwd: str, env: dict[str, str], resume: str | None) -> None:
        self.subtask_id, self.task, self.cwd, self.project_env = subtask_id, task, Path(cwd), env
        self.agent_session_id = resume or self.agent_session_id

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
        self.resuming = resume  # until a turn of it goes through: a session a kill cut may not resume
        env = {**agent_environment(self.options.agent_env), **self.project_env}
        argv = headless_argv(self.options.agent_command, resume=resume, model=self.options.model)
        ref = self.actor_ref
        self.process = AgentProcess(
            argv,
            cwd=self.cwd,
            env=env,
            on_lines=lambda lines: tell_quietly(
                ref, AgentLines(lines=[line.decode("utf-8", "replace") for line in lines])
            ),
            on_exit=lambda code: tell_quietly(ref, AgentExited(returncode=code)),
        )
        warm_up()
        self.stop_ticker()
        self.ticker = Ticker(
            WATCHDOG_TICK_S, functools.partial(tell_quietly, ref, WatchdogTick()), f"watchdog-{self.name}"
        )

    def send_turn(self, text: str) -> None:
        self.turn_open, self.last_turn = True, text
        # The limits count the agent's own time: not the checks and reviews between its turns.
        self.clock.start(time.monotonic())
        assert self.process is not None
        if not self.process.send(wire.user_turn(text)):
            self.fail_turn(f"the agent stopped reading its input: {self.process.stderr_tail()[-300:]}")

    def on_tick(self) -> None:
        waiting, paused = bool(self.clarifications), self.pauses.active
        reason = self.clock.overrun(time.monotonic(), turn_open=self.turn_open, waiting=waiting, paused=paused)
        if reason is not None:
            self.fail_turn(reason)

    def stop_ticker(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None

    def release(self) -> None:
        self.pauses.end()
        self.stop_ticker()
        if self.process is not None:
            self.process.close()
            self.process = None

    # -- what the agent says ---------------------------------------------------------------

    def on_agent_lines(self, lines: list[str]) -> None:
        with self.recording_together():  # a flood of lines: one message to the ContextKeeper, not one a line
            for line in lines:
                self.on_agent_line(line)

    def on_agent_line(self, raw: str) -> None:
        self.clock.heard(time.monotonic())
        line = wire.parse_line(raw)
        for event in self.activity.events_of(line, self.subtask_id, self.agent_session_id or ""):
            self.record(event)
        match line:
            case wire.SystemLine(subtype="init") as init:
                self.on_init(init)
            case wire.UserLine() as echo:
                if loop := self.activity.loop_closed_by(echo):
                    self.on_loop(loop)
            case wire.ControlRequestLine() as request:
                self.carry_out(self.clarifications.control_request(request, self.subtask_id, self.task, self.cwd))
            case wire.ResultLine() as result:
                self.on_result(result)
            case wire.RateLimitLine(rate_limit_info=info) if info.status == "rejected":
                self.pauses.rejected(info)

    def on_init(self, init: wire.SystemLine) -> None:
        if not init.session_id or init.session_id == self.agent_session_id:
            return
        if self.agent_session_id is not None:
            self.activity.session_cost_usd = 0.0  # a new agent session: its running total starts again
        self.agent_session_id = session = init.session_id
        self.tell(DISPATCHER, AgentSessionOpened(subtask_id=self.subtask_id, agent_session_id=session))
        started = AgentStarted(
            subtask_id=self.subtask_id, agent_session_id=session, model=init.model, cwd=init.cwd, agent=CLAUDE.name
        )
        self.record(started)

    def on_result(self, result: wire.ResultLine) -> None:
        spent = Spent(
            usd=self.activity.turn_cost_usd,
            subtask_id=self.subtask_id,
            session_total_usd=self.activity.session_cost_usd,
        )
        self.tell(DISPATCHER, spent)
        if not self.turn_open:
            return
        if (refocus := self.activity.refocus_turn()) is not None:
            self.send_turn(refocus)
            return
        if not result.is_error:
            self.resuming = None
            self.pauses.went_through()
            self.on_final_text(result.result or "")
        elif limit := self.pauses.limit_of(result, time.time()):
            self.pause(limit)
        elif self.resuming:
            self.start_afresh(turns.failure(result))
        else:
            self.fail_turn(turns.failure(result))

    def start_afresh(self, why: str) -> None:
        """The resumed agent session cannot go on (a kill cut its transcript): a new one takes the same turn
        in the same tree, whose files hold the work so far."""
        self.record(Notice(level="warning", text=f"[{self.subtask_id}] agent session {self.resuming} could not be"
                           f" resumed ({why}); a new session takes the turn"))  # fmt: skip
        self.agent_session_id = None
        self.activity.session_cost_usd = 0.0
        try:
            self.start_process(resume=None)
        except AgentError as exc:
            self.fail_turn(str(exc))
            return
        self.send_turn(self.last_turn)

    def on_final_text(self, text: str) -> None:
        """Done, unless the final answer is really a question for the Clarifier."""
        if (asking := self.clarifications.final_answer(text, self.subtask_id, self.task)) is not None:
            self.carry_out(asking)
        else:
            self.report(SubtaskDone(subtask_id=self.subtask_id, ok=True, summary=text))

    # -- loops and limits ------------------------------------------------------------------

    def on_loop(self, loop: str) -> None:
        """Interrupt the turn and refocus the agent the first time; fail the subtask the second."""
        if not self.turn_open or (action := self.activity.on_loop(loop)) is None:
            return
        self.record(Stuck(subtask_id=self.subtask_id, pattern=loop, action=action))
        if action == "failed":
            self.fail_turn(f"stuck: {loop}, again after being refocused")
        else:
            self._send(wire.interrupt(f"refocus-{self.activity.loops_seen}"))

    def pause(self, limit: Limit) -> None:
        """Wait out a rate or usage limit on a timer; the turn stays open and is not an attempt."""
        try:
            self.record(self.pauses.begin(limit, self.subtask_id, time.time()))
        except PauseTooLong as exc:
            self.fail_turn(str(exc))

    def on_pause_over(self, pause: int) -> None:
        if not self.pauses.is_current(pause):
            return  # a timer of a pause already ended (cancelled, or superseded)
        self.pauses.end()
        if self.turn_open:
            text = turns.CONTINUE_AFTER_PAUSE.format(reason=self.pauses.reason)
            self.start_turn(text, fresh_process=self.process is None or not self.process.alive)

    def on_agent_exited(self, code: int | None) -> None:
        if not self.turn_open or (self.process is not None and self.process.alive):
            return  # between turns, or the word of a process already replaced
        tail = self.process.stderr_tail()[-300:] if self.process else ""
        why = f"agent exited with code {code} before finishing" + (f": {tail}" if tail else "")
        if self.resuming:
            self.start_afresh(why)
        else:
            self.fail_turn(why)

    def fail_turn(self, reason: str) -> None:
        """Kill the agent and report the subtask failed, once per turn."""
        self.pauses.end()
        if self.process is not None:
            self.process.kill()
        if not self.turn_open:
            return
        self.clarifications.clear()
        self.report(SubtaskDone(subtask_id=self.subtask_id, ok=False, reason=reason))

    def report(self, done: SubtaskDone) -> None:
        """Close the turn and tell the Dispatcher how it went."""
        self.turn_open = False
        self.tell(DISPATCHER, msgspec.structs.replace(done, agent_session_id=self.agent_session_id))

    def on_interrupt(self, reason: str) -> None:
        """Stop the turn through the control protocol: the CLI ends it and keeps the session, resumable."""
        if self.turn_open and self.process is not None and self.process.alive:
            self.record(Notice(level="warning", text=f"interrupting the agent of {self.subtask_id}: {reason}"))
            self._send(wire.interrupt("supervisor"))

    # -- questions -------------------------------------------------------------------------

    def carry_out(self, steps: Steps) -> None:
        """Do what the Clarifications say, in order."""
        for event in steps.events:
            self.record(event)
        if steps.to_clarifier is not None:
            self.tell(CLARIFIER, steps.to_clarifier)
        if steps.to_agent is not None:
            self._send(steps.to_agent)
        if steps.turn is not None:
            self.send_turn(steps.turn)

    def _send(self, line: bytes) -> None:
        if self.process is None or not self.process.send(line):
            self.fail_turn("the agent stopped reading its input")
