"""--ask-human: put an agent's question to the person at the terminal, with the brain's answer as
the default taken on Enter, on end of input, or when the time runs out."""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from agentproxy.messages import AgentQuestion
from agentproxy.redact import installed
from agentproxy.view import terminal_safe


def ask_on_terminal(
    questions: Sequence[AgentQuestion],
    defaults: Sequence[str],
    timeout_s: float,
    stdin_fd: int | None = None,
    out: TextIO | None = None,
) -> list[str]:
    fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out = out or sys.stderr
    answers = []
    for question, default in zip(questions, defaults, strict=True):
        out.write(f"\n? {_shown(question.question)}\n")
        for number, option in enumerate(question.options, start=1):
            detail = f" - {option.description}" if option.description else ""
            out.write(f"  {number}. {_shown(option.label + detail)}\n")
        out.write(f"  answer (number or text; Enter = {_shown(repr(default))}; {timeout_s:g}s): ")
        out.flush()
        reply = _read_line(fd, timeout_s)
        answers.append(_chosen(question, reply) or default)
        out.write(f"  -> {_shown(answers[-1])}\n")
        out.flush()
    return answers


def _shown(text: str) -> str:
    """The agent's words as the terminal may show them: no secrets, no control sequences."""
    return terminal_safe(installed().redact(text))


def _chosen(question: AgentQuestion, reply: str | None) -> str:
    reply = (reply or "").strip()
    if reply.isdigit() and 1 <= int(reply) <= len(question.options):
        return question.options[int(reply) - 1].label
    return reply


def _read_line(fd: int, timeout_s: float) -> str | None:
    """A line from fd, or None on timeout / end of input; unbuffered so select() stays truthful."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            readable, _, _ = select.select([fd], [], [], left)
        except (OSError, ValueError):
            return None
        if not readable:
            return None
        chunk = os.read(fd, 1)
        if not chunk:
            return data.decode(errors="replace") or None
        data += chunk
    return data.decode(errors="replace")
