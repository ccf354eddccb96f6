"""The offline brain: deterministic rules, no network. The default when no GEMINI_API_KEY is set."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentproxy.brain.base import EventSink, Pick, PickInput, ReviewInput, Situation, ToolJudgement
from agentproxy.checks import failure_report
from agentproxy.knowledge import Knowledge
from agentproxy.messages import AgentQuestion, Plan, Subtask, Verdict
from agentproxy.tool_input import (
    COMMAND_KEYS,
    MAX_INPUT_STRINGS,
    input_strings,
    looks_like_path,
)

DEFAULT_ANSWER = "Proceed with your best judgement, following the project's conventions."
FOLLOW_UP_CHARS = 6000

_NUMBERED_ITEM = re.compile(r"^\s*(\d+)[.)]\s+(\S.*)$")
_BULLET_ITEM = re.compile(r"^ {0,3}[-*]\s+(\S.*)$")
_RECOMMENDED = re.compile(r"\brecommended\b", re.IGNORECASE)
_NO_CHANGE_VERB = re.compile(
    r"^(?:please\s+)?(?:explain|review|list|describe|summari[sz]e|analy[sz]e|audit|investigate|inspect|"
    r"find out|tell me|show me|show|what|why|how|where|which|who|is|are|does|do|can|could|count|compare|"
    r"check whether|look at|read|report)\b",
    re.IGNORECASE,
)
# A task that also asks for a change ("review X and fix what you find") expects one.
_CHANGE_VERB = re.compile(
    r"\b(?:fix|add|create|write|implement|change|update|remove|delete|rename|refactor|move|replace|edit|"
    r"modify|make|build|generate|install|upgrade|bump|migrate|convert|commit|save|document)\b",
    re.IGNORECASE,
)


class OfflineBrain:
    name = "offline"

    def __init__(self) -> None:
        self.events = EventSink()  # nothing to report: no calls, no cost

    def plan(self, task: str, knowledge: Knowledge) -> Plan:
        """Items of a numbered list form a chain (each after the previous); items of a bullet list are
        independent subtasks, run at once; anything else is one subtask."""
        if len(items := _numbered_items(task)) >= 2:
            return Plan(subtasks=_subtasks(items, chain=True), rationale="one subtask per numbered item, in order")
        if len(items := _bullet_items(task)) >= 2:
            return Plan(subtasks=_subtasks(items, chain=False), rationale="one subtask per bullet, independent")
        return Plan(
            subtasks=[Subtask(id="1", title=_title(task), instructions=task, expects_changes=expects_changes(task))]
        )

    def answer(self, questions: Sequence[AgentQuestion], situation: Situation) -> list[str]:
        """For each question: the recommended option, else the first one, else a policy answer."""
        return [_pick(question) for question in questions]

    def review(self, review: ReviewInput) -> Verdict:
        """Passed when every check passed; with no checks, the agent's own success stands."""
        failed = [result for result in review.checks if not result.passed]
        if not failed:
            findings = [f"`{r.command}` passed" for r in review.checks]
            if not review.verdicts and not findings:
                findings = ["no checks found; the agent reported success"]
            return Verdict(passed=True, findings=findings)
        findings = [
            f"`{r.command}` timed out" if r.timed_out else f"`{r.command}` exited {r.exit_code}" for r in failed
        ]
        follow_up = (
            "The project's checks fail after your change. Fix the code (not the checks) so they pass.\n\n"
            + failure_report(review.checks, FOLLOW_UP_CHARS)
        )
        return Verdict(passed=False, findings=findings, follow_up=follow_up)

    def pick(self, choice: PickInput) -> Pick:
        """The smallest diff among the verified attempts, then the first to pass."""
        best = min(choice.attempts, key=lambda attempt: attempt.diff_lines)  # min keeps the first of equals
        sizes = ", ".join(f"{a.attempt_id}: {a.diff_lines}" for a in choice.attempts)
        return Pick(
            attempt_id=best.attempt_id, reason=f"the smallest diff of those that passed (lines changed: {sizes})"
        )

    def judge_tool(self, tool_name: str, tool_input: dict[str, Any], situation: Situation) -> ToolJudgement:
        """Deny a tool that carries a command or a path leaving the project; allow the rest."""
        if concern := _tool_concern(tool_input, situation.working_dir):
            return ToolJudgement(allow=False, reason=f"{tool_name} {concern}; denied by the offline brain")
        return ToolJudgement(allow=True, reason=f"{tool_name}: no rule applies; allowed by the offline brain")


def expects_changes(instructions: str) -> bool:
    """False when the wording asks for words, not changes: "explain ...", "review ...", "list ...", a question."""
    text = instructions.strip()
    asks_for_words = bool(_NO_CHANGE_VERB.match(text))
    if asks_for_words and text.endswith("?"):
        return False
    return bool(_CHANGE_VERB.search(text)) or not asks_for_words


def _tool_concern(tool_input: Any, working_dir: str) -> str | None:
    """What makes an unknown tool risky: a shell command, or a path that leaves the working directory
    (without one to compare with: any absolute, ~ or climbing path)."""
    try:
        strings = list(itertools.islice(input_strings(tool_input), MAX_INPUT_STRINGS + 1))
    except ValueError:
        return "has input nested too deeply to check"
    if len(strings) > MAX_INPUT_STRINGS:
        return "has more input than can be checked"
    for key, value in strings:
        if key in COMMAND_KEYS and value.strip():
            return f"carries a command ({key})"
        if looks_like_path(key, value) and _may_leave(value, working_dir):
            return f"carries a path that may leave the project ({key or 'a value'})"
    return None


def _may_leave(path: str, working_dir: str) -> bool:
    if not working_dir:
        return path.startswith(("/", "~")) or ".." in path.replace("\\", "/").split("/")
    root = Path(working_dir).resolve()
    try:
        return not (root / Path(path).expanduser()).resolve().is_relative_to(root)
    except (OSError, ValueError, RuntimeError):  # NUL bytes, symlink loops: not provably inside
        return True


def _pick(question: AgentQuestion) -> str:
    for option in question.options:
        if _RECOMMENDED.search(option.label) or _RECOMMENDED.search(option.description):
            return option.label
    return question.options[0].label if question.options else DEFAULT_ANSWER


def _subtasks(items: list[str], chain: bool) -> list[Subtask]:
    return [
        Subtask(
            id=str(i),
            title=_title(item),
            instructions=item,
            depends_on=[str(i - 1)] if chain and i > 1 else [],
            expects_changes=expects_changes(item),
        )
        for i, item in enumerate(items, start=1)
    ]


def _numbered_items(task: str) -> list[str]:
    items: list[str] = []
    for line in task.splitlines():
        match = _NUMBERED_ITEM.match(line)
        if match and int(match.group(1)) == len(items) + 1:
            items.append(match.group(2).strip())
        else:
            _continue_item(items, line)
    return items


def _bullet_items(task: str) -> list[str]:
    items: list[str] = []
    for line in task.splitlines():
        if match := _BULLET_ITEM.match(line):
            items.append(match.group(1).strip())
        else:
            _continue_item(items, line)
    return items


def _continue_item(items: list[str], line: str) -> None:
    """An indented line after an item is a wrapped continuation of it."""
    if items and line.strip() and line.startswith((" ", "\t")):
        items[-1] += " " + line.strip()


def _title(text: str, limit: int = 72) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "task"
    return first if len(first) <= limit else first[: limit - 1] + "…"
