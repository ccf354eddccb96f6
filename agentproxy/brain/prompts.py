"""Prompts for the brain, built within a character budget.

A prompt never exceeds its budget. Sections come in order of relevance; each gets at most its
share, and text that must be cut keeps the part that matters: instructions keep their start, an
agent's output and check output keep their end (where the result and the errors are).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentproxy.brain.base import PickInput, ReviewInput, Situation
from agentproxy.knowledge import Knowledge
from agentproxy.messages import AgentQuestion, CheckResult, Plan

CUT = "…"
MIN_CONTEXT_CHARS = 200


@dataclass(frozen=True)
class Section:
    title: str
    text: str
    keep: Literal["start", "end"] = "start"
    share: float = 1.0  # the most of the whole budget this section may take


def compose(sections: Sequence[Section], knowledge: Knowledge, max_chars: int) -> str:
    """The sections in order, then the project context in whatever budget is left."""
    parts: list[str] = []
    left = max_chars
    for section in sections:
        if not section.text.strip():
            continue
        header = f"## {section.title}\n"
        room = min(int(section.share * max_chars), left) - len(header) - 2
        if room <= len(CUT):
            continue
        parts.append(header + _fit(section.text.strip(), room, section.keep))
        left -= len(parts[-1]) + 2
    if left > MIN_CONTEXT_CHARS and knowledge.project.documents:
        header = "## Project context\n"
        parts.append(header + knowledge.project.render(left - len(header) - 2))
    return "\n\n".join(parts)[:max_chars]


def _fit(text: str, room: int, keep: Literal["start", "end"]) -> str:
    if len(text) <= room:
        return text
    return text[: room - len(CUT)] + CUT if keep == "start" else CUT + text[-(room - len(CUT)) :]


# -- one builder per purpose ----------------------------------------------------------------

PLAN_SYSTEM = """You are the supervisor of coding agents (Claude Code). Split the task into subtasks
an agent can each finish and verify on its own. A small task is exactly ONE subtask: no ceremony.
Give each subtask: id ("1", "2", ...), a short title, complete instructions for the agent (it sees
only these and the repository), acceptance checks as shell commands where the project has a way to
test (else none), acceptance criteria in words, the ids it depends on, and the files it expects to
touch, and expects_changes: false only for a subtask that by its nature changes no file (explain,
review, list, answer a question), true otherwise. Follow the project's context (standards, mission,
mockups) when there is any.
Subtasks that do not depend on each other run AT ONCE, each agent in its own copy of the repository,
and their changes are merged afterwards: give depends_on whenever a subtask needs another's result
(its files, its API), and split independent work so that two subtasks rarely edit the same lines."""

ANSWER_SYSTEM = """You are the supervisor answering a coding agent's question on behalf of the
developer, who is not available. Answer decisively from the task, the plan, the project context and
the conversation so far. When options are offered, answer with exactly one option's label unless
none fits. Never ask a question back."""

REVIEW_SYSTEM = """You are the supervisor reviewing a coding agent's work against the task. Judge
the diff and the check results against the subtask's acceptance checks and criteria. Failing
checks mean the work is not done. When it is not done, write the follow-up instruction for the
same agent: what is wrong and what to do, concretely. If the agent's final report asks the user
something it needs before it can finish (a decision, a confirmation, information), set `question` to
that question, with its options, and leave follow_up empty; an offer of more work after the work is
done ("Would you like me to also...") is not a question: leave `question` empty then."""

JUDGE_SYSTEM = """You are the supervisor deciding whether a coding agent may use a tool that no
rule covers. Allow what the task plausibly needs inside the project; deny anything destructive,
anything outside the project, and anything that leaks secrets."""


PICK_SYSTEM = """You are the supervisor choosing which of several attempts at the same subtask lands.
Every attempt passed the project's checks and a review. Prefer the one that does what the subtask asks
most completely and correctly, with the least unrelated change, in the project's style. Answer with its
attempt_id and a one-sentence reason."""

# What the planner is told of each agent backend it may give subtasks to.
AGENT_STRENGTHS = {
    "claude": "Claude Code (Anthropic): strong at multi-file changes, refactoring and following project conventions",
    "codex": "Codex CLI (OpenAI): strong at focused algorithmic code and shell-driven work",
    "gemini": "Gemini CLI (Google): large context, good at reading much code and documentation-heavy work",
}


def plan_prompt(task: str, knowledge: Knowledge, max_chars: int) -> str:
    sections = [Section("Task", task, share=0.4)]
    if len(knowledge.agents) > 1:
        offered = "\n".join(f"- {name}: {AGENT_STRENGTHS.get(name, name)}" for name in knowledge.agents)
        choose = "Give each subtask `agent`: the name of the one that fits it best.\n"
        sections.append(Section("Agents you can give subtasks to", choose + offered, share=0.1))
    return compose(sections, knowledge, max_chars)


def answer_prompt(questions: Sequence[AgentQuestion], situation: Situation, max_chars: int) -> str:
    knowledge = situation.knowledge
    sections = [
        Section("Task", situation.task, share=0.2),
        Section("The agent's question", _questions_text(questions), share=0.2),
        Section("Current subtask", situation.subtask.instructions if situation.subtask else "", share=0.15),
        Section("Plan", _plan_text(knowledge.plan), share=0.1),
        Section("Earlier questions and answers", "\n\n".join(knowledge.exchanges), keep="end", share=0.1),
        Section("The agent's recent output", situation.transcript_tail, keep="end", share=0.2),
    ]
    return compose(sections, knowledge, max_chars)


def review_prompt(review: ReviewInput, max_chars: int) -> str:
    subtask = review.subtask
    acceptance = "\n".join([*(f"- must pass: `{c}`" for c in subtask.checks), *(f"- {c}" for c in subtask.criteria)])
    checks = (
        "\n\n".join(f"$ {r.command}  ({_outcome(r)})\n{r.output_tail}" for r in review.checks)
        or "(the project has no checks)"
    )
    # Only what did not simply pass: the rest is in the check results already.
    against_base = "\n".join(f"- `{v.command}`: {v.kind}: {v.summary}" for v in review.verdicts if v.kind != "passed")
    sections = [
        Section("Task", review.task, share=0.15),
        Section("Subtask", f"{subtask.title}\n\n{subtask.instructions}", share=0.15),
        Section("Acceptance checks and criteria", acceptance, share=0.1),
        Section("Check results (end of output)", checks, keep="end", share=0.2),
        Section(
            "Checks compared with the subtask's base (pre-existing failures and checks that could not run are not"
            " the agent's doing; do not ask it to fix them unless the task is about them)",
            against_base,
            share=0.05,
        ),
        Section("Diff", review.diff, share=0.3),
        Section("The agent's final report", review.agent_summary, keep="end", share=0.1),
    ]
    return compose(sections, review.knowledge, max_chars)


def pick_prompt(choice: PickInput, max_chars: int) -> str:
    share = 0.6 / max(1, len(choice.attempts))
    sections = [
        Section("Task", choice.task, share=0.1),
        Section("Subtask", f"{choice.subtask.title}\n{choice.subtask.instructions}", share=0.1),
    ]
    for attempt in choice.attempts:
        about = f"agent: {attempt.agent}; lines changed: {attempt.diff_lines}\nIts report: {attempt.summary}\n\n"
        sections.append(Section(f"Attempt {attempt.attempt_id}", about + attempt.diff, share=share))
    return compose(sections, choice.knowledge, max_chars)


def judge_prompt(tool_name: str, tool_input: dict[str, Any], situation: Situation, max_chars: int) -> str:
    sections = [
        Section("Task", situation.task, share=0.3),
        Section("Tool request", f"{tool_name} {json.dumps(tool_input, ensure_ascii=False)}", share=0.3),
    ]
    return compose(sections, situation.knowledge, max_chars)


def _outcome(check: CheckResult) -> str:
    return "passed" if check.passed else "timed out" if check.timed_out else f"exited {check.exit_code}"


def _questions_text(questions: Sequence[AgentQuestion]) -> str:
    lines = []
    for question in questions:
        lines.append(question.question)
        lines += [f"- {o.label}" + (f": {o.description}" if o.description else "") for o in question.options]
    return "\n".join(lines)


def _plan_text(plan: Plan | None) -> str:
    if plan is None:
        return ""
    return "\n".join(f"{s.id}. {s.title}" for s in plan.subtasks)
