"""Recognising a final answer that is really a question, and turning it into an AgentQuestion."""

from __future__ import annotations

import re

from agentproxy.messages import AgentQuestion, Option

# How much of the end of a final answer is read: a question that matters is asked last.
TAIL_CHARS = 600
_ASKING = re.compile(
    r"\b(should I|shall I|do you want|would you like|which (?:one|option|approach|framework|library)|"
    r"let me know|please (?:confirm|clarify|choose|specify|tell me)|can you (?:confirm|clarify)|"
    r"what (?:would|should) )",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[a-zA-Z][.)]|[-*•])\s+(?:\*\*)?(.+?)(?:\*\*)?\s*$")
_FILE_NAME = re.compile(r"^`?[\w./-]+\.\w+`?(?:\s*[:(-].*)?$")
_EITHER_OR = re.compile(r"([\w.+#-]+),? or ([\w.+#-]+)\s*\?\s*$")
# An offer after finished work ("Would you like me to add tests?") is not a question to answer.
_OFFER = re.compile(r"^(?:would you like me to|want me to|do you want me to|shall I also|should I also|let me know if)", re.I)


def looks_like_question(text: str) -> bool:
    """True when the answer ends by asking the user something, rather than reporting work done."""
    tail = text.strip()[-TAIL_CHARS:]
    if not tail:
        return False
    last_paragraph = tail.split("\n\n")[-1].strip()
    # The offer may follow the report in the same paragraph: "Done, tests pass.\nWould you like me to ...?"
    last_sentence = re.split(r"\n|(?<=[.!])\s+", last_paragraph)[-1].strip()
    if _OFFER.match(last_paragraph) or _OFFER.match(last_sentence):
        return False
    if last_paragraph.endswith("?"):
        return True
    last_lines = [line for line in tail.splitlines() if line.strip()][-8:]
    asks = any(_ASKING.search(line) for line in last_lines)
    return asks and any(line.rstrip().endswith("?") for line in last_lines)


def question_from_text(text: str) -> AgentQuestion:
    """The question in a final answer, with the options it offers ("X or Y?", or the list next to it)."""
    lines = text.strip()[-TAIL_CHARS:].splitlines()
    at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].rstrip().endswith("?")), len(lines) - 1)
    asked = lines[at].strip() if lines else ""
    if either := _EITHER_OR.search(asked):
        options = [Option(label=either.group(1).strip()), Option(label=either.group(2).strip())]
    else:
        options = [Option(label=label) for label in _adjacent_list(lines, at)]
    return AgentQuestion(question=asked or text.strip(), options=options)


def _adjacent_list(lines: list[str], at: int) -> list[str]:
    """The list right after the question, else right before it; a list of files is a summary of
    the work, not choices."""
    items = _leading_items(lines[at + 1 :]) or _leading_items(lines[:at][::-1])[::-1]
    return [] if all(_FILE_NAME.match(item) for item in items) else items


def _leading_items(lines: list[str]) -> list[str]:
    items: list[str] = []
    for line in lines:
        if match := _LIST_ITEM.match(line):
            items.append(match.group(1).replace("**", "").strip())
        elif items or line.strip():
            break  # the list ended, or text stands between the question and any list
    return items
