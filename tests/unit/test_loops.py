"""The stuck detector: repeated calls, alternations and repeated errors, and what is not a loop."""

from __future__ import annotations

import itertools

from agentproxy.loops import StuckDetector

_ids = itertools.count()


def step(detector: StuckDetector, tool: str, tool_input: dict, result: object, is_error: bool = False) -> str | None:
    tool_use_id = f"toolu_{next(_ids)}"
    detector.called(tool_use_id, tool, tool_input)
    return detector.returned(tool_use_id, result, is_error)


def test_the_same_call_with_the_same_result_n_times_is_a_loop() -> None:
    detector = StuckDetector(repeats=4)
    seen = [step(detector, "Bash", {"command": "make"}, "error: no rule", True) for _ in range(4)]
    assert seen[:3] == [None, None, None]
    assert seen[3] is not None and "Bash" in seen[3] and "4 times" in seen[3]


def test_results_that_differ_only_in_durations_and_ids_count_as_the_same() -> None:
    detector = StuckDetector(repeats=3)
    results = [
        "FAILED in 0.51s (run 3f9a2b7c11aa)",
        "FAILED in 0.73s (run 99aa00bb11cc)",
        "FAILED in 1.2s (run 0123456789ab)",
    ]
    assert [step(detector, "Bash", {"command": "pytest"}, r) for r in results][-1] is not None


def test_progress_is_not_a_loop() -> None:
    detector = StuckDetector(repeats=4)
    outcomes = [step(detector, "Bash", {"command": "pytest"}, f"{n} failed") for n in (5, 4, 3, 2, 1)]
    assert outcomes == [None] * 5
    edits = [step(detector, "Edit", {"file_path": "a.py", "new_string": f"v{n}"}, "ok") for n in range(6)]
    assert edits == [None] * 6


def test_an_a_b_alternation_is_a_loop() -> None:
    detector = StuckDetector(repeats=4)
    outcomes = []
    for _ in range(3):
        outcomes.append(step(detector, "Edit", {"file_path": "a.py", "old_string": "x", "new_string": "y"}, "ok"))
        outcomes.append(step(detector, "Edit", {"file_path": "a.py", "old_string": "y", "new_string": "x"}, "ok"))
    assert outcomes[:-1] == [None] * 5
    assert outcomes[-1] is not None and "alternating" in outcomes[-1]


def test_the_same_error_from_different_calls_is_a_loop() -> None:
    detector = StuckDetector(repeats=4)
    commands = ["npm test", "npm run test", "npx jest", "yarn test"]
    outcomes = [
        step(detector, "Bash", {"command": c}, [{"type": "text", "text": "sh: 1: jest: not found"}], True)
        for c in commands
    ]
    assert outcomes[-1] is not None and "same error" in outcomes[-1] and "jest: not found" in outcomes[-1]


def test_the_same_output_without_error_from_different_calls_is_not_a_loop() -> None:
    detector = StuckDetector(repeats=3)
    assert [step(detector, "Read", {"file_path": f"f{n}.py"}, "") for n in range(5)] == [None] * 5


def test_forget_starts_afresh_and_unknown_results_are_ignored() -> None:
    detector = StuckDetector(repeats=2)
    step(detector, "Bash", {"command": "ls"}, "x")
    detector.forget()
    assert step(detector, "Bash", {"command": "ls"}, "x") is None
    assert detector.returned("never-called", "x", False) is None
