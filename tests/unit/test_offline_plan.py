"""The offline brain's plans are graphs: a bullet list runs at once, a numbered list is a chain."""

from __future__ import annotations

from agentproxy.brain.offline import OfflineBrain
from agentproxy.knowledge import Knowledge
from agentproxy.messages import Plan


def plan(task: str) -> Plan:
    return OfflineBrain().plan(task, Knowledge())


def test_bullet_items_are_independent_subtasks() -> None:
    made = plan("Add three helpers:\n- add a slugify function\n* add a clamp function\n- add a chunks function")
    assert [(s.id, s.instructions, s.depends_on) for s in made.subtasks] == [
        ("1", "add a slugify function", []),
        ("2", "add a clamp function", []),
        ("3", "add a chunks function", []),
    ]


def test_numbered_items_form_a_chain() -> None:
    made = plan("1. create models.py\n2. add a view that\n   uses the models\n3) write the tests")
    assert [(s.instructions, s.depends_on) for s in made.subtasks] == [
        ("create models.py", []),
        ("add a view that uses the models", ["1"]),
        ("write the tests", ["2"]),
    ]


def test_anything_else_is_one_subtask() -> None:
    for task in ("Fix the login bug", "Fix it:\n- only one bullet", "See 1. below\nand 3. above"):
        made = plan(task)
        assert len(made.subtasks) == 1 and made.subtasks[0].instructions == task


def test_a_numbered_list_wins_over_bullets_nested_in_it() -> None:
    made = plan("1. build the parser\n   - with tests\n2. use it in the cli")
    assert [s.depends_on for s in made.subtasks] == [[], ["1"]]
