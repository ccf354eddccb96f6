"""Every message agentproxy's actors exchange, and every event that leaves the process.

Two channels, each a tagged union of frozen msgspec Structs:

- ``Event`` (tag ``kind``): what happened, recorded in the session store and streamed to the
  terminal (``--output json`` prints exactly these, one a line) and, later, the server and bridge.
- ``Msg`` (tag ``msg``): requests and replies between actors.

Both encode to JSON and msgpack with the module-level codecs below. New fields get defaults, so
an older peer can still decode a newer message. Every subclass repeats ``frozen=True``: msgspec
inherits it, but type checkers following PEP 681 (dataclass_transform) do not.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# ---------------------------------------------------------------------------------------------
# Plain data carried inside messages


class Data(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of the value types carried by events and messages."""


class Subtask(Data, frozen=True):
    id: str
    title: str
    instructions: str
    checks: list[str] = []  # shell commands that must pass
    criteria: list[str] = []  # acceptance criteria for the review, in words
    depends_on: list[str] = []
    files: list[str] = []  # files it expects to touch
    expects_changes: bool = True  # False for work that changes nothing by nature (explain, review, list)
    agent: str = ""  # the agent backend the brain picked among --agents; "": the run's first


class Plan(Data, frozen=True):
    subtasks: list[Subtask]
    rationale: str = ""


class Option(Data, frozen=True):
    label: str
    description: str = ""


class AgentQuestion(Data, frozen=True):
    question: str
    header: str = ""
    options: list[Option] = []
    multi_select: bool = False


class DetectedCheck(Data, frozen=True):
    """A command the project's developers run to test it, and the evidence it was chosen on."""

    command: str
    reason: str


class CheckResult(Data, frozen=True):
    command: str
    exit_code: int
    output_tail: str = ""
    duration_s: float = 0.0
    timed_out: bool = False
    environment: str = ""  # set when the check could not really run: the cause and the fix

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class Verdict(Data, frozen=True):
    passed: bool
    findings: list[str] = []
    follow_up: str = ""  # the instruction for the agent when not passed
    question: str = ""  # the agent's final message asks the user this: answer it rather than judge the work


class Usage(Data, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


CheckKind = Literal["passed", "failed", "preexisting", "environment"]


class CheckVerdict(Data, frozen=True):
    """One check judged against the subtask's base: only what the change made worse fails the agent."""

    command: str
    kind: CheckKind
    new_failures: list[str] = []  # tests that fail now and did not at the base
    preexisting: list[str] = []  # tests that failed at the base too
    summary: str = ""  # one line, for the agent and the user
    cause: str = ""  # an environment failure's evidence
    fix: str = ""  # and what would repair it


# ---------------------------------------------------------------------------------------------
# Events: what happened. The ContextKeeper stamps session_id and at when it records them.

SessionStatus = Literal["running", "done", "failed", "interrupted", "budget"]
SubtaskStatus = Literal["pending", "running", "done", "failed", "blocked", "discarded"]
LandingKind = Literal["committed", "fast-forward", "merge", "kept"]
BrainPurpose = Literal["plan", "answer", "review", "judge", "pick"]


class Event(msgspec.Struct, tag_field="kind", frozen=True, kw_only=True, omit_defaults=True):
    session_id: str = ""
    at: float = 0.0


class SessionStarted(Event, tag="session_started", frozen=True):
    task: str
    working_dir: str
    screenshots: list[str] = []
    continued: bool = False
    trace: str = ""  # what the run's trace and span ids derive from (agentproxy.telemetry.ids)


class ContextLoaded(Event, tag="context_loaded", frozen=True):
    sources: list[str] = []
    chars: int = 0
    images: int = 0


class PlanMade(Event, tag="plan_made", frozen=True):
    plan: Plan
    brain: str


class SubtaskStarted(Event, tag="subtask_started", frozen=True):
    subtask_id: str
    title: str
    attempt: int = 1
    agent: str = ""  # the agent backend that works on it (claude, codex, gemini)


class AgentStarted(Event, tag="agent_started", frozen=True):
    subtask_id: str
    agent_session_id: str
    model: str = ""
    cwd: str = ""
    agent: str = ""  # the agent backend (claude, codex, gemini)


class AgentSaid(Event, tag="agent_said", frozen=True):
    subtask_id: str
    text: str


class AgentUsedTool(Event, tag="agent_used_tool", frozen=True):
    subtask_id: str
    tool: str
    detail: str = ""


class AgentRetrying(Event, tag="agent_retrying", frozen=True):
    subtask_id: str
    attempt: int
    error_status: int | None = None
    delay_ms: int = 0


class AgentPaused(Event, tag="agent_paused", frozen=True):
    """A rate or usage limit ended the agent's turn: it waits, then continues the same agent session."""

    subtask_id: str
    reason: str
    wait_s: float
    until: float = 0.0  # epoch seconds


class Stuck(Event, tag="stuck", frozen=True):
    """The agent repeats itself: refocused the first time, failed the second."""

    subtask_id: str
    pattern: str
    action: Literal["refocus", "failed"]


class ToolDecided(Event, tag="tool_decided", frozen=True):
    subtask_id: str
    tool: str
    allowed: bool
    reason: str


class QuestionAsked(Event, tag="question_asked", frozen=True):
    subtask_id: str
    questions: list[AgentQuestion]
    via: Literal["tool", "final_text"] = "tool"


class QuestionAnswered(Event, tag="question_answered", frozen=True):
    subtask_id: str
    answers: dict[str, str]
    by: str


class AgentFinished(Event, tag="agent_finished", frozen=True):
    subtask_id: str
    agent_session_id: str
    is_error: bool
    result: str = ""
    usage: Usage = Usage()
    num_turns: int = 0
    api_error_status: int | None = None


class ChecksRan(Event, tag="checks_ran", frozen=True):
    subtask_id: str
    results: list[CheckResult]
    verdicts: list[CheckVerdict] = []  # one per result, in order: how each counts against the agent


class SetupStarted(Event, tag="setup_started", frozen=True):
    """The project's environment is being set up in a tree, so that its checks can run: why, and each command."""

    cwd: str
    reasons: list[str] = []
    problems: list[str] = []  # what keeps the checks from running until the user fixes it
    commands: list[str] = []


class SetupStepRan(Event, tag="setup_step_ran", frozen=True):
    why: str
    result: CheckResult


class BaselineRan(Event, tag="baseline_ran", frozen=True):
    """The subtask's checks at its base commit, before the agent's first turn: what already failed."""

    subtask_id: str
    commit: str
    results: list[CheckResult]
    cached: list[str] = []  # the commands whose result came from the store


class Reviewed(Event, tag="reviewed", frozen=True):
    subtask_id: str
    verdict: Verdict
    attempt: int = 1


class FollowUpSent(Event, tag="follow_up_sent", frozen=True):
    subtask_id: str
    attempt: int
    instruction: str


class SubtaskFinished(Event, tag="subtask_finished", frozen=True):
    subtask_id: str
    status: SubtaskStatus
    reason: str = ""


class AttemptVerdict(Data, frozen=True):
    """How one best-of-N attempt at a subtask did."""

    attempt_id: str
    agent: str
    passed: bool
    failing: int = 0  # checks its change broke, at its first review
    diff_lines: int | None = None  # lines changed, for those that passed
    cost_usd: float = 0.0


class BestOfChosen(Event, tag="best_of_chosen", frozen=True):
    """--best-of: which attempt goes on for the subtask (it lands when it passed) and why; the others are discarded."""

    subtask_id: str
    chosen: str
    passed: bool
    reason: str
    attempts: list[AttemptVerdict] = []


class ActorRestarted(Event, tag="actor_restarted", frozen=True):
    actor: str
    reason: str
    restarts: int


class Notice(Event, tag="notice", frozen=True):
    text: str
    level: Literal["info", "warning", "error"] = "info"


class Committed(Event, tag="committed", frozen=True):
    commit: str
    message: str


class WorktreeCreated(Event, tag="worktree_created", frozen=True):
    """A git worktree for one subtask (or ``result``, the run's integration worktree) under the data directory."""

    subtask_id: str
    branch: str
    path: str
    start: str  # the commit it was created from: the run's base plus what its dependencies merged


class Merged(Event, tag="merged", frozen=True):
    """A verified subtask's branch merged into the run's integration branch."""

    subtask_id: str
    branch: str
    commit: str


class MergeConflicted(Event, tag="merge_conflicted", frozen=True):
    subtask_id: str
    files: list[str]


class WorktreeRemoved(Event, tag="worktree_removed", frozen=True):
    subtask_id: str
    branch_kept: bool = False


class Landed(Event, tag="landed", frozen=True):
    """The run's result on the user's branch; or kept on its own branch, with the one command that merges it."""

    how: LandingKind
    branch: str  # the user's branch
    commit: str = ""
    reason: str = ""
    command: str = ""


class WorkerJoined(Event, tag="worker_joined", frozen=True):
    """A remote worker host announced itself to the bridge."""

    worker: str
    slots: int
    capabilities: dict[str, str] = {}  # agent CLI -> version


class WorkerLeft(Event, tag="worker_left", frozen=True):
    """A remote worker host is gone (silent past its liveness, disconnected, or stopping): its work is requeued."""

    worker: str
    reason: str


class SubtaskAssigned(Event, tag="subtask_assigned", frozen=True):
    """A subtask went to a remote worker: its epoch fences off what an earlier assignment still sends."""

    subtask_id: str
    worker: str
    epoch: int
    bundle_bytes: int = 0  # the base sent along (0: the worker's clone held it already)


class BrainCalled(Event, tag="brain_called", frozen=True):
    """One call of the supervisor's own LLM, with what it cost."""

    purpose: BrainPurpose
    model: str
    ok: bool
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    error: str = ""


class BrainFellBack(Event, tag="brain_fell_back", frozen=True):
    """The brain could not answer; the offline brain's answer was used instead."""

    purpose: str
    reason: str
    for_rest_of_session: bool = False


class SessionFinished(Event, tag="session_finished", frozen=True):
    status: SessionStatus
    reason: str = ""
    cost_usd: float = 0.0  # the agents'
    duration_s: float = 0.0
    brain_cost_usd: float = 0.0  # the supervisor's own LLM calls


AnyEvent = (
    SessionStarted
    | ContextLoaded
    | PlanMade
    | SubtaskStarted
    | AgentStarted
    | AgentSaid
    | AgentUsedTool
    | AgentRetrying
    | AgentPaused
    | Stuck
    | ToolDecided
    | QuestionAsked
    | QuestionAnswered
    | AgentFinished
    | ChecksRan
    | SetupStarted
    | SetupStepRan
    | BaselineRan
    | Reviewed
    | FollowUpSent
    | SubtaskFinished
    | BestOfChosen
    | ActorRestarted
    | Notice
    | Committed
    | WorktreeCreated
    | Merged
    | MergeConflicted
    | WorktreeRemoved
    | Landed
    | BrainCalled
    | BrainFellBack
    | SessionFinished
    | WorkerJoined
    | WorkerLeft
    | SubtaskAssigned
)

# ---------------------------------------------------------------------------------------------
# Messages between actors. Actors are addressed by name through the Directory, never by
# reference, so a message stays plain data and survives a restart of its addressee.


class Msg(msgspec.Struct, tag_field="msg", frozen=True, kw_only=True, omit_defaults=True):
    """Base of every request and reply between actors."""


class RunTask(Msg, tag="run_task", frozen=True):
    """Runtime -> Dispatcher: plan and run a task in a session."""

    session_id: str
    task: str
    working_dir: str
    trace: str = ""  # the run's trace key (SessionStarted.trace): an agent's TRACEPARENT derives from it
    screenshots: list[str] = []
    plan: Plan | None = None  # when resuming: the recorded plan, not a new one
    done_subtasks: list[str] = []  # when resuming: ids already finished
    verified_subtasks: list[str] = []  # when resuming: ids whose work passed review but was not merged yet
    agent_sessions: dict[str, str] = {}  # when resuming: subtask id -> its agent session
    agent_costs: dict[str, float] = {}  # when resuming: subtask id -> what its agent session has cost so far
    agents: dict[str, str] = {}  # when resuming: subtask id -> the agent backend its session belongs to
    resume_agent_session: str | None = None  # continuing a one-subtask session with new work


class PlanRequest(Msg, tag="plan_request", frozen=True):
    """Dispatcher -> Planner."""

    session_id: str
    task: str


class PlanReady(Msg, tag="plan_ready", frozen=True):
    """Planner -> Dispatcher."""

    plan: Plan


class RunSubtask(Msg, tag="run_subtask", frozen=True):
    """Dispatcher -> ClaudeWorker: start (or resume) an agent session on a subtask."""

    subtask: Subtask
    prompt: str
    cwd: str
    task: str = ""
    resume_agent_session: str | None = None
    env: dict[str, str] = {}  # the project's environment (its virtualenv, node_modules/.bin), set up for its checks
    cost_so_far_usd: float = 0.0  # the resumed agent session's running total, so that its turns are not counted twice


class SpawnAgent(Msg, tag="spawn_agent", frozen=True):
    """Dispatcher -> ClaudeWorker: start the agent's process now, its first turn comes with RunSubtask.

    Sent while the Verifier runs the checks at the base, so that the agent's start-up overlaps them.
    """

    subtask_id: str
    cwd: str
    task: str = ""
    resume_agent_session: str | None = None
    env: dict[str, str] = {}


class Prepare(Msg, tag="prepare", frozen=True):
    """Dispatcher -> Verifier: before the first turn, set the tree's environment up and run the checks at the base."""

    subtask: Subtask
    cwd: str
    base_commit: str = ""
    # Judge against these known results of the run's base instead of running the base here: the tree
    # holds a merge in progress, or the whole run's work.
    judge_against: str = ""


class AgentCanStart(Msg, tag="agent_can_start", frozen=True):
    """Verifier -> Dispatcher: the tree's environment is planned (its steps may still run): the agent's
    process can start in it while the checks run at the base."""

    subtask_id: str
    env: dict[str, str] = {}


class Prepared(Msg, tag="prepared", frozen=True):
    """Verifier -> Dispatcher: the environment the agent should work in, and what already failed at the base."""

    subtask_id: str
    base_tree: str = ""  # git's id of the base's files: the base's check results are kept under it
    env: dict[str, str] = {}
    preexisting: list[CheckVerdict] = []  # checks failing at the base: the agent is told, never blamed


class FollowUp(Msg, tag="follow_up", frozen=True):
    """Dispatcher -> ClaudeWorker: another turn in the same agent session."""

    subtask_id: str
    instruction: str
    attempt: int


class AgentSessionOpened(Msg, tag="agent_session_opened", frozen=True):
    """ClaudeWorker -> Dispatcher: the agent's own session id, for resuming."""

    subtask_id: str
    agent_session_id: str


class SubtaskDone(Msg, tag="subtask_done", frozen=True):
    """ClaudeWorker -> Dispatcher: the agent's turn ended (or the agent failed)."""

    subtask_id: str
    ok: bool
    reason: str = ""
    summary: str = ""
    agent_session_id: str | None = None


class Ask(Msg, tag="ask", frozen=True):
    """ClaudeWorker -> Clarifier: an agent asked something."""

    worker: str
    subtask_id: str
    request_id: str
    questions: list[AgentQuestion]
    task: str = ""
    transcript_tail: str = ""


class Answer(Msg, tag="answer", frozen=True):
    """Clarifier -> ClaudeWorker."""

    request_id: str
    answers: dict[str, str]


class JudgeTool(Msg, tag="judge_tool", frozen=True):
    """ClaudeWorker -> Clarifier: a tool use no policy rule decides."""

    worker: str
    subtask_id: str
    request_id: str
    tool_name: str
    tool_input: dict[str, Any] = {}
    task: str = ""


class ToolVerdict(Msg, tag="tool_verdict", frozen=True):
    """Clarifier -> ClaudeWorker."""

    request_id: str
    allow: bool
    reason: str


class Review(Msg, tag="review", frozen=True):
    """Dispatcher -> Verifier: verify a subtask's work in its directory."""

    task: str
    subtask: Subtask
    cwd: str
    agent_summary: str = ""
    attempt: int = 1
    base_commit: str = ""  # the diff under review is from here to the working tree
    base_tree: str = ""  # from Prepared: where the base's check results are found


class ReviewDone(Msg, tag="review_done", frozen=True):
    """Verifier -> Dispatcher."""

    subtask_id: str
    verdict: Verdict
    checks: list[CheckResult] = []
    check_verdicts: list[CheckVerdict] = []  # one per check, in order
    nothing_changed: bool = False  # the subtask expects changes and its tree has none: not reviewed


class BeginRun(Msg, tag="begin_run", frozen=True):
    """Dispatcher -> Integrator: set the user's uncommitted changes apart; the run's base and branch."""

    session_id: str
    task: str
    isolated: bool  # subtasks run side by side, each in a worktree, merged on an integration branch
    resumed: bool = False
    # To a restarted Integrator: the run's base and branch, already set apart (it answers nothing).
    base: str = ""
    branch: str = ""


class RunBase(Msg, tag="run_base", frozen=True):
    """Integrator -> Dispatcher."""

    commit: str
    branch: str
    tree: str = ""  # git's id of the base's files: the base's check results are kept under it
    error: str = ""


class MakeTree(Msg, tag="make_tree", frozen=True):
    """Dispatcher -> Integrator: the directory a subtask works in (a worktree when isolated)."""

    subtask_id: str
    integration: bool = False  # the integration worktree itself (resolving a conflict, fixing the whole)
    remote: bool = False  # it runs on a worker host: its branch only, no worktree here


class TreeReady(Msg, tag="tree_ready", frozen=True):
    """Integrator -> Dispatcher."""

    subtask_id: str
    cwd: str = ""
    base_commit: str = ""
    merged: str = ""  # its work is merged already (pa stopped before that was recorded): the merge commit
    branch: str = ""  # remote: the subtask's branch, at base_commit
    error: str = ""


class Integrate(Msg, tag="integrate", frozen=True):
    """Dispatcher -> Integrator: commit a verified subtask's work and merge it into the integration branch
    (in place: commit it); or, with ``conclude``, commit the merge an agent resolved. The Integrator
    commits on a thread of its own and tells itself the same request, ``committed``, to merge it."""

    subtask_id: str
    title: str
    conclude: bool = False
    integration: bool = False  # it worked in the integration worktree itself (a fix): commit it there
    committed: bool = False  # the Integrator committed its worktree's work already: only the merge is left


class Integrated(Msg, tag="integrated", frozen=True):
    """Integrator -> Dispatcher: merged (commit), or stopped on conflicts (files) or an error."""

    subtask_id: str
    commit: str = ""
    conflicted: list[str] = []
    error: str = ""


class Land(Msg, tag="land", frozen=True):
    """Dispatcher -> Integrator: put the verified result on the user's branch; clean up."""

    task: str


class LandDone(Msg, tag="land_done", frozen=True):
    """Integrator -> Dispatcher."""

    landed: Landed | None = None
    conflicted: list[str] = []  # the user's branch moved and merging it into the result conflicts
    error: str = ""


class Candidate(Data, frozen=True):
    """A verified best-of-N attempt, for the Verifier to read its diff."""

    attempt_id: str
    agent: str
    cwd: str
    base_commit: str
    summary: str = ""


class PickBest(Msg, tag="pick_best", frozen=True):
    """Dispatcher -> Verifier: which verified attempt at a subtask lands (the brain picks, with its reason)."""

    subtask_id: str
    task: str
    subtask: Subtask
    candidates: list[Candidate]


class BestPicked(Msg, tag="best_picked", frozen=True):
    """Verifier -> Dispatcher."""

    subtask_id: str
    attempt_id: str
    reason: str
    diff_lines: dict[str, int] = {}  # attempt -> lines changed


class Discard(Msg, tag="discard", frozen=True):
    """Dispatcher -> Integrator: a losing attempt's worktree and branch go."""

    subtask_id: str


class Release(Msg, tag="release", frozen=True):
    """Dispatcher -> Integrator: the run ends; remove the worktrees of merged work, keep (and list) the rest."""

    status: str
    merged: list[str] = []  # the subtasks whose work is merged (in this run or an earlier one)


class Cancel(Msg, tag="cancel", frozen=True):
    reason: str = "cancelled"


class Spent(Msg, tag="spent", frozen=True):
    """A worker (at each turn's result) or the brain -> Dispatcher: money spent, counted against the budget."""

    usd: float
    by: Literal["agent", "brain"] = "agent"
    subtask_id: str = ""
    session_total_usd: float = 0.0  # the agent session's running total: a resumed agent starts from it


class Interrupt(Msg, tag="interrupt", frozen=True):
    """Dispatcher -> ClaudeWorker: stop the agent's turn through the control protocol (its session is kept)."""

    reason: str


class StartWorker(Msg, tag="start_worker", frozen=True):
    """Dispatcher -> Supervisor (ask): start a ClaudeWorker under supervision (remote: its RemoteAgent)."""

    name: str
    remote: bool = False
    agent: str = "claude"  # the backend whose CLI the worker drives (a remote worker: always Claude Code)


class StopWorker(Msg, tag="stop_worker", frozen=True):
    name: str


class ActorFailed(Msg, tag="actor_failed", frozen=True):
    """A crashed actor -> Supervisor (sent from on_failure)."""

    name: str
    error: str


class Restarted(Msg, tag="restarted", frozen=True):
    """Supervisor -> everyone: a fresh instance now answers to this name."""

    name: str


class Escalated(Msg, tag="escalated", frozen=True):
    """Supervisor -> Dispatcher: restarts exhausted; end the session."""

    name: str
    reason: str


class OpenSession(Msg, tag="open_session", frozen=True):
    """Runtime -> ContextKeeper (ask): start a session, or continue one; returns its id."""

    task: str
    working_dir: str
    screenshots: list[str] = []
    continue_session: str | None = None


class GetContext(Msg, tag="get_context", frozen=True):
    """Runtime -> ContextKeeper (ask): load the project context for the brain; returns its sources."""

    working_dir: str
    context_dir: str | None = None
    screenshots: list[str] = []


class Record(Msg, tag="record", frozen=True):
    """Anyone -> ContextKeeper: record and fan out an event."""

    event: AnyEvent


class RecordAll(Msg, tag="record_all", frozen=True):
    """A worker -> ContextKeeper: the events of a batch of its agent's lines, in order."""

    events: list[AnyEvent]


class AgentLines(Msg, tag="agent_lines", frozen=True):
    """A worker's reader thread -> its worker: the agent's stdout lines read at once (one or thousands)."""

    lines: list[str]
    process: int = 0  # which of the worker's processes printed them: one per turn ignores an old one's


class AgentExited(Msg, tag="agent_exited", frozen=True):
    returncode: int | None
    process: int = 0


class WatchdogTick(Msg, tag="watchdog_tick", frozen=True):
    """A worker's ticker -> the worker: time to see whether its agent is silent or over its time."""


class PauseOver(Msg, tag="pause_over", frozen=True):
    """A worker's pause timer -> the worker: continue the agent session after a rate limit."""

    pause: int  # which pause ended; a stale timer of an earlier pause is ignored


class RestartDue(Msg, tag="restart_due", frozen=True):
    """The Supervisor's backoff timer -> the Supervisor: restart the crashed actor now."""

    name: str


# -- the bridge to remote workers (docs/bridge.md) ----------------------------------------------


class AssignSubtask(Msg, tag="assign_subtask", frozen=True):
    """Dispatcher -> Bridge: run a subtask on a remote worker from its branch at base."""

    subtask_id: str
    session_id: str
    branch: str
    base: str


class EndAssignment(Msg, tag="end_assignment", frozen=True):
    """Dispatcher -> Bridge: the subtask ended; the worker removes its worktree, or keeps it if not merged."""

    subtask_id: str
    merged: bool


class ToAgent(Msg, tag="to_agent", frozen=True):
    """RemoteAgent -> Bridge: a message for a remote subtask's actors (RunSubtask, Prepare, Answer, ...)."""

    subtask_id: str
    message: Any  # one of agentproxy.bridge.protocol.Downward


class PeersSaid(Msg, tag="peers_said", frozen=True):
    """Broker -> Bridge: the frames read at once from workers, decoded, in order."""

    said: list[tuple[bytes, Any]]  # a worker's routing id, and one of agentproxy.bridge.protocol.AnyBridgeMsg


class PeerLost(Msg, tag="peer_lost", frozen=True):
    """Broker -> Bridge: a worker missed its heartbeats, or sent what cannot be read."""

    peer: bytes
    reason: str


class AssignmentLost(Msg, tag="assignment_lost", frozen=True):
    """Bridge -> Dispatcher: the worker running a subtask is gone; the subtask starts again elsewhere."""

    subtask_id: str
    worker: str
    reason: str


class RemoteSlots(Msg, tag="remote_slots", frozen=True):
    """Bridge -> Dispatcher: how many agents the live remote workers can run at once."""

    slots: int


class FetchResult(Msg, tag="fetch_result", frozen=True):
    """Bridge -> Integrator: a remote subtask's verified branch arrived as a bundle."""

    subtask_id: str
    bundle: str
    head: str


class ResultFetched(Msg, tag="result_fetched", frozen=True):
    """Integrator -> Bridge."""

    subtask_id: str
    error: str = ""


class BundleReady(Msg, tag="bundle_ready", frozen=True):
    """A bundle-writing thread -> its Bridge: an assignment's base, written ("" path: the worker has it)."""

    assignment: str
    path: str = ""
    error: str = ""


class BrainVerdict(Msg, tag="brain_verdict", frozen=True):
    """A brain-calling thread -> its Bridge: the review a remote Verifier asked for."""

    assignment: str
    epoch: int
    request: str
    verdict: Verdict


class AssignmentEnded(Msg, tag="assignment_ended", frozen=True):
    """A worker host's Assignment -> the host: it finished, or was revoked; its slot is free."""

    assignment: str


class HandBack(Msg, tag="hand_back", frozen=True):
    """pa-worker's signal handler -> its host: SIGTERM; hand every assignment back to the supervisor."""


AnyMsg = (
    RunTask
    | PlanRequest
    | PlanReady
    | RunSubtask
    | SpawnAgent
    | Prepare
    | AgentCanStart
    | Prepared
    | FollowUp
    | AgentSessionOpened
    | SubtaskDone
    | Ask
    | Answer
    | JudgeTool
    | ToolVerdict
    | Review
    | ReviewDone
    | Cancel
    | StartWorker
    | StopWorker
    | ActorFailed
    | Restarted
    | Escalated
    | OpenSession
    | GetContext
    | Record
    | AgentLines
    | AgentExited
    | WatchdogTick
    | PauseOver
    | RestartDue
)

# ---------------------------------------------------------------------------------------------
# Codecs, built once.

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
event_json_decoder = msgspec.json.Decoder(AnyEvent)
event_msgpack_decoder = msgspec.msgpack.Decoder(AnyEvent)
msg_json_decoder = msgspec.json.Decoder(AnyMsg)
msg_msgpack_decoder = msgspec.msgpack.Decoder(AnyMsg)


def to_json(value: Event | Msg | Data) -> bytes:
    return _json_encoder.encode(value)


def to_msgpack(value: Event | Msg | Data) -> bytes:
    return _msgpack_encoder.encode(value)
