"""The test commands of a project's GitHub workflows: the strongest hint of what its developers run.

Only workflows that run on pushes and pull requests count, only `run:` lines that start a known
test runner (setup, install and lint steps are left out), and a `${{ ... }}` expression, which
only GitHub Actions can evaluate, is dropped from the command and named in the reason.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentproxy.messages import DetectedCheck
from agentproxy.project_files import read_text
from agentproxy.runner_commands import MAKEFILES, names_non_tests, runs_tests, split_words

_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
# A simple command of a shell line: the text between `&&` and `;` outside quotes, as written.
_SEGMENT = re.compile(r"""(?:'[^']*'|"(?:\\.|[^"\\])*"|(?<!&)&(?!&)|[^;&'"])+""")
_CHANGE_TRIGGERS = frozenset({"push", "pull_request", "pull_request_target", "merge_group", "workflow_call"})
_OTHER_SHELLS = ("pwsh", "powershell", "cmd")


def workflow_checks(project: Path) -> list[DetectedCheck]:
    """Each distinct test command of .github/workflows/*.yml, with the workflow and step it comes from."""
    folder = project / ".github" / "workflows"
    if not folder.is_dir():
        return []
    import yaml  # lazy: only projects with a workflow pay for it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    checks: dict[str, DetectedCheck] = {}
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        try:
            workflow = yaml.load(read_text(path), Loader=loader)
        except yaml.YAMLError:
            continue
        if not isinstance(workflow, dict) or not _runs_on_changes(workflow):
            continue
        where = path.relative_to(project).as_posix()
        for command, step, dropped in _test_commands(workflow):
            if not _runnable_in_tree(command, project):
                continue
            reason = f"the CI workflow {where} runs it (step '{step}')"
            if dropped:
                reason += f"; without {', '.join(dropped)}, which only GitHub Actions can evaluate"
            checks.setdefault(command, DetectedCheck(command=command, reason=reason))
    return list(checks.values())


def _runs_on_changes(workflow: dict[Any, Any]) -> bool:
    # YAML 1.1 reads a bare `on:` key as the boolean true.
    triggers = workflow.get("on", workflow.get(True))
    if triggers is None:
        return True
    names = {triggers} if isinstance(triggers, str) else set(triggers) if isinstance(triggers, list | dict) else set()
    return bool(names & _CHANGE_TRIGGERS)


def _runnable_in_tree(command: str, project: Path) -> bool:
    """False for ctest, or make of a generated Makefile: they need the CI's earlier build steps."""
    words = [os.path.basename(word) for word in split_words(command)]
    return "ctest" not in words and ("make" not in words or any((project / name).is_file() for name in MAKEFILES))


def _test_commands(workflow: dict[Any, Any]) -> Iterator[tuple[str, str, list[str]]]:
    """(command, step name, expressions dropped) for each `run:` line that runs a test runner."""
    jobs = workflow.get("jobs")
    for job in jobs.values() if isinstance(jobs, dict) else ():
        if not isinstance(job, dict) or str(job.get("runs-on", "")).startswith("windows"):
            continue
        job_directory = _default_working_directory(job) or _default_working_directory(workflow)
        steps = job.get("steps")
        for number, step in enumerate(steps if isinstance(steps, list) else [], start=1):
            if not isinstance(step, dict) or not isinstance(step.get("run"), str):
                continue
            name = str(step.get("name") or f"step {number}")
            if str(step.get("shell", "bash")).startswith(_OTHER_SHELLS) or names_non_tests(name):
                continue
            directory = str(step.get("working-directory") or job_directory)
            if "${{" in directory:
                continue
            prefix = f"cd {shlex.quote(directory)} && " if directory not in ("", ".") else ""
            for command, dropped in _test_lines(step["run"]):
                yield prefix + command, name, dropped


def _default_working_directory(section: dict[Any, Any]) -> str:
    defaults = section.get("defaults")
    run = defaults.get("run") if isinstance(defaults, dict) else None
    return str(run.get("working-directory") or "") if isinstance(run, dict) else ""


def _test_lines(script: str) -> Iterator[tuple[str, list[str]]]:
    """The lines of a shell script that run tests, reduced to their test and `cd` commands."""
    for line in script.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kept, dropped = [], []
        for segment in _SEGMENT.findall(line):
            text, lost = _without_expressions(segment.strip())
            dropped += lost
            argv = split_words(text)
            if argv and (argv[0] == "cd" or runs_tests(argv)):
                kept.append(text)
        while kept and kept[-1].startswith("cd "):
            kept.pop()
        if kept:
            yield " && ".join(kept), dropped


def _without_expressions(segment: str) -> tuple[str, list[str]]:
    """The command without its `${{ ... }}` words (and an option they were the value of)."""
    expressions = _EXPRESSION.findall(segment)
    if not expressions:
        return segment, []
    kept: list[str] = []
    for word in split_words(_EXPRESSION.sub("\0", segment)):
        if "\0" not in word:
            kept.append(word)
        elif len(kept) > 1 and kept[-1].startswith("-") and "=" not in kept[-1]:
            kept.pop()
    if kept == ["cd"]:  # `cd` alone would go home
        return "", expressions
    return shlex.join(kept), expressions
