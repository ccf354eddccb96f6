"""--ask-human on the terminal: the person's answer, the default on Enter, and the agent's words shown safely."""

from __future__ import annotations

import io
import os

from agentproxy.human import ask_on_terminal
from agentproxy.messages import AgentQuestion, Option


def answered(typed: bytes, question: AgentQuestion, default: str = "B") -> tuple[list[str], str]:
    read, write = os.pipe()
    os.write(write, typed)
    os.close(write)
    out = io.StringIO()
    try:
        answers = ask_on_terminal([question], [default], timeout_s=2, stdin_fd=read, out=out)
    finally:
        os.close(read)
    return answers, out.getvalue()


QUESTION = AgentQuestion(question="Which one?", options=[Option(label="A"), Option(label="B", description="the other")])


def test_a_number_picks_the_option_and_enter_takes_the_default() -> None:
    assert answered(b"1\n", QUESTION)[0] == ["A"]
    assert answered(b"\n", QUESTION)[0] == ["B"]


def test_the_agents_words_reach_the_terminal_without_control_sequences() -> None:
    hostile = AgentQuestion(
        question="Pick one\x1b]52;c;ZXZpbA==\x07 now\x1b[2J?",
        options=[Option(label="\x1b]0;pwned\x07yes", description="\x9b31mred")],
    )
    _, shown = answered(b"\n", hostile, default="yes")
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "Pick one" in shown and "now" in shown and "yes" in shown
