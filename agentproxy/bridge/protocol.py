"""The bridge's wire protocol (docs/bridge.md is its specification): frames, versions, message types.

A frame on the wire is two ZeroMQ message parts (the ROUTER adds the peer's routing id in front):

    [header]  b"APB/<version>"      ASCII: the protocol's name and its version
    [body]    msgpack                one BridgeMsg, tagged by its "type" field

The in-process messages an assignment's actors exchange travel inside Deliver and Report unchanged:
the same msgspec Structs as between local actors.
"""

from __future__ import annotations

import msgspec

from agentproxy.messages import (
    AgentCanStart,
    AgentSessionOpened,
    Answer,
    Ask,
    Cancel,
    CheckResult,
    CheckVerdict,
    Escalated,
    FollowUp,
    Interrupt,
    JudgeTool,
    Prepare,
    Prepared,
    Record,
    RecordAll,
    Restarted,
    Review,
    ReviewDone,
    RunSubtask,
    SpawnAgent,
    Spent,
    Subtask,
    SubtaskDone,
    ToolVerdict,
    Verdict,
)

PROTOCOL = b"APB"
VERSION = 1
HEADER = PROTOCOL + b"/" + str(VERSION).encode()
CHUNK_BYTES = 512 * 1024  # a bundle travels in chunks of at most this many bytes
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the broker's ZMQ_MAXMSGSIZE: a chunk and its envelope fit well inside

# The in-process messages that cross the bridge, down to an assignment and up from it.
Downward = RunSubtask | SpawnAgent | FollowUp | Prepare | Review | Answer | ToolVerdict | Interrupt | Cancel | Restarted
Upward = (
    Record
    | RecordAll
    | AgentSessionOpened
    | AgentCanStart
    | Prepared
    | SubtaskDone
    | ReviewDone
    | Ask
    | JudgeTool
    | Spent
    | Restarted
    | Escalated
)


class BridgeMsg(msgspec.Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True):
    """Base of every message on the bridge."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The supervisor's policy and limits for one assignment, applied on the worker."""

    model: str | None = None
    checks: list[str] = []
    check_timeout_s: float = 600.0
    setup: str = "auto"
    setup_timeout_s: float = 1800.0
    silence_timeout_s: float = 600.0
    agent_timeout_s: float = 3600.0
    deny_patterns: list[str] = []
    allow_tools: list[str] = []
    max_question_follow_ups: int = 2
    stuck_repeats: int = 4
    rate_limit_max_wait_s: float = 6 * 3600.0
    rate_limit_first_wait_s: float = 30.0
    brain_review: bool = True


class Held(msgspec.Struct, frozen=True):
    """An assignment a worker is running: sent again with every Hello."""

    assignment: str
    epoch: int


# -- worker -> supervisor ------------------------------------------------------------------


class Hello(BridgeMsg, tag="hello", frozen=True):
    """The worker announces itself: on connecting, and again whenever the supervisor asks."""

    name: str
    slots: int
    capabilities: dict[str, str] = {}  # agent CLI -> its version
    repos: dict[str, list[str]] = {}  # repository id -> branch heads its cached clone holds
    running: list[Held] = []


class Heartbeat(BridgeMsg, tag="heartbeat", frozen=True):
    """Either way, every heartbeat interval; any message counts as a sign of life."""


class Report(BridgeMsg, tag="report", frozen=True):
    """An in-process message from an assignment's actors to the supervisor's."""

    assignment: str
    epoch: int
    message: Upward


class Judge(BridgeMsg, tag="judge", frozen=True):
    """The worker's Verifier asks the supervisor's brain for a verdict (the brain's key stays there)."""

    assignment: str
    epoch: int
    request: str
    task: str
    subtask: Subtask
    checks: list[CheckResult] = []
    verdicts: list[CheckVerdict] = []
    agent_summary: str = ""
    diff: str = ""


class ResultReady(BridgeMsg, tag="result_ready", frozen=True):
    """The subtask's branch, verified on the worker, was sent as a bundle in transfer."""

    assignment: str
    epoch: int
    transfer: str
    head: str  # the branch's commit in the bundle


class Leaving(BridgeMsg, tag="leaving", frozen=True):
    """The worker stops (SIGTERM): its assignments are handed back."""

    reason: str = ""


# -- supervisor -> worker ------------------------------------------------------------------


class Welcome(BridgeMsg, tag="welcome", frozen=True):
    heartbeat_s: float
    liveness: int


class Assign(BridgeMsg, tag="assign", frozen=True):
    """Run a subtask: its base commit follows as a bundle (transfer) for the worker's clone of repo."""

    assignment: str
    epoch: int
    session_id: str
    subtask_id: str
    repo: str  # the repository's id: its root commit
    branch: str  # the subtask's branch, to create at base
    base: str
    transfer: str
    settings: Settings


class Deliver(BridgeMsg, tag="deliver", frozen=True):
    """An in-process message from the supervisor's actors to an assignment's."""

    assignment: str
    epoch: int
    message: Downward


class Judged(BridgeMsg, tag="judged", frozen=True):
    assignment: str
    epoch: int
    request: str
    verdict: Verdict


class Revoke(BridgeMsg, tag="revoke", frozen=True):
    """Stop an assignment: its agent is killed, its worktree kept on the worker for inspection."""

    assignment: str
    epoch: int
    reason: str


class Finish(BridgeMsg, tag="finish", frozen=True):
    """The assignment's work is merged (or the run ended): the worker removes its worktree."""

    assignment: str
    epoch: int
    keep: bool = False  # not merged: the worktree stays for inspection


class Disconnect(BridgeMsg, tag="disconnect", frozen=True):
    """The supervisor forgets the worker (unknown to it, or a malformed frame): announce again to go on."""

    reason: str


class Refused(BridgeMsg, tag="refused", frozen=True):
    """The supervisor will not talk to this worker at all (a protocol version it does not speak)."""

    reason: str


# -- both ways -----------------------------------------------------------------------------


class Chunk(BridgeMsg, tag="chunk", frozen=True):
    """A part of a bundle: base bundles go down, result bundles up."""

    transfer: str
    index: int
    count: int
    data: bytes


AnyBridgeMsg = (
    Hello
    | Heartbeat
    | Report
    | Judge
    | ResultReady
    | Leaving
    | Welcome
    | Assign
    | Deliver
    | Judged
    | Revoke
    | Finish
    | Disconnect
    | Refused
    | Chunk
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyBridgeMsg)


class MalformedFrame(Exception):
    """A frame that is not this protocol's: counted, and its peer disconnected."""


class VersionMismatch(MalformedFrame):
    def __init__(self, version: str) -> None:
        super().__init__(f"protocol version {version} is not spoken here (this side speaks APB/{VERSION})")
        self.version = version


def encode(message: BridgeMsg) -> list[bytes]:
    return [HEADER, _encoder.encode(message)]


def decode(parts: list[bytes]) -> AnyBridgeMsg:
    """The message in a frame's parts (without the routing id); MalformedFrame if it is none."""
    if len(parts) != 2:
        raise MalformedFrame(f"{len(parts)} parts, not 2")
    header, body = parts
    name, _, version = header.partition(b"/")
    if name != PROTOCOL:
        raise MalformedFrame("not an APB frame")
    if version != str(VERSION).encode():
        raise VersionMismatch(version.decode("ascii", "replace")[:20])
    try:
        return _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedFrame(f"undecodable body: {str(exc)[:200]}") from None


def message_types() -> list[str]:
    """The type tag of every bridge message: docs/bridge.md must describe each."""
    return [member.__struct_config__.tag for member in AnyBridgeMsg.__args__]
