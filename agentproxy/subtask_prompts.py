"""What an agent is told: its subtask, a merge conflict to resolve, or what the review of the whole found."""

from __future__ import annotations

from collections.abc import Sequence

from agentproxy.checks import preexisting_note
from agentproxy.messages import CheckVerdict, RunTask, Subtask

NOTHING_CHANGED = (
    "You reported the work as done, but nothing changed in the working directory since this subtask"
    " started: no file was edited and nothing was committed. Make the changes the task asks for now."
    " If you are blocked, say exactly what you need."
)
MARKERS_LEFT = (
    "Conflict markers (<<<<<<<, =======, >>>>>>>) are still in: {files}. Resolve every conflict so that"
    " both sides' intents hold, and remove the markers."
)


def subtask_prompt(
    run: RunTask, subtask: Subtask, place: tuple[int, int], preexisting: Sequence[CheckVerdict] = ()
) -> str:
    """place: the subtask's number in the plan and the plan's size ((1, 1): the task is the subtask)."""
    number, total = place
    parts = [
        subtask.instructions
        if total == 1
        else (f"Overall task: {run.task}\n\nYour part ({number} of {total}): {subtask.title}\n\n{subtask.instructions}")
    ]
    if subtask.criteria:
        parts.append("Acceptance criteria:\n" + "\n".join(f"- {c}" for c in subtask.criteria))
    if subtask.checks:
        parts.append("These commands must pass:\n" + "\n".join(f"- `{c}`" for c in subtask.checks))
    if note := preexisting_note(preexisting):
        parts.append(note)
    if run.screenshots:
        parts.append(
            "Screenshots for reference (open them with the Read tool):\n" + "\n".join(f"- {p}" for p in run.screenshots)
        )
    return "\n\n".join(parts)


def resolve_subtask(
    task: str, subtask_id: str, merging: Subtask | None, merged: Sequence[Subtask], files: Sequence[str]
) -> Subtask:
    """An agent's work: finish the merge in progress so that both sides' intents hold."""
    incoming = (
        f"The change being merged in: {merging.title}\n{merging.instructions}"
        if merging is not None
        else "The change being merged in: new commits on your branch, made while this run worked."
    )
    already = "\n".join(f"- {s.title}: {s.instructions}" for s in merged) or "- (only the base)"
    instructions = (
        f"Overall task: {task}\n\nA git merge in this directory stopped on conflicts. Resolve them so that"
        f" BOTH sides' intents hold; do not drop either side's work.\n\n{incoming}\n\n"
        f"Already on this branch:\n{already}\n\nConflicted files:\n"
        + "\n".join(f"- {f}" for f in files)
        + "\n\nEdit the files to remove every conflict marker (<<<<<<<, =======, >>>>>>>) and make the code"
        " consistent. Do not run git commit, git merge or git reset: the supervisor concludes the merge."
    )
    subject = merging.id if merging is not None else "your branch"
    return Subtask(id=subtask_id, title=f"Resolve the conflicts merging {subject}", instructions=instructions)


def fix_subtask(task: str, number: int, follow_up: str, findings: Sequence[str]) -> Subtask:
    """An agent's work in the integration worktree: what the review of the whole run found."""
    found = "\n".join(f"- {f}" for f in findings)
    instructions = (
        f"Overall task: {task}\n\nThe subtasks' work has been merged in this directory, and the review of"
        f" the whole against the task found problems:\n{found}\n\n{follow_up}".rstrip()
    )
    return Subtask(
        id=f"fix-{number}", title=f"Fix what the review of the whole found ({number})", instructions=instructions
    )


def final_subtask(task: str, planned: Sequence[Subtask]) -> Subtask:
    """The whole task as one subtask, for the final review: every acceptance check and criterion."""
    checks = list(dict.fromkeys(c for s in planned for c in s.checks))
    criteria = [c for s in planned for c in s.criteria]
    return Subtask(
        id="final",
        title="The whole task, merged",
        instructions=task,
        checks=checks,
        criteria=criteria,
        expects_changes=False,  # nothing is asked of an agent: the merged work is reviewed as it is
    )
