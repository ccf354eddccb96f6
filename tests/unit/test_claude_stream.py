"""The stream-json parser, fed the real transcripts of Claude Code 2.1.197 and 2.1.330."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentproxy.agents import claude_stream as wire

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-samples"
TRANSCRIPTS = sorted(SAMPLES.glob("claude_*.jsonl"))


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module", autouse=True)
def _samples_present():
    if not TRANSCRIPTS:
        pytest.fail(f"protocol samples missing at {SAMPLES}")


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.name)
def test_every_line_of_a_real_transcript_parses(path):
    parsed = [wire.parse_line(line) for line in _lines(path)]
    assert not [p for p in parsed if isinstance(p, (wire.MalformedLine, wire.UnknownLine))]


def test_write_transcript_init_tool_use_and_result():
    parsed = [wire.parse_line(line) for line in _lines(SAMPLES / "claude_stream_json_write_2.1.330.jsonl")]
    init = parsed[0]
    assert isinstance(init, wire.SystemLine) and init.subtype == "init" and init.session_id
    tool_uses = [
        b for p in parsed if isinstance(p, wire.AssistantLine) for b in p.message.content if b.type == "tool_use"
    ]
    assert [(b.name, b.input["content"]) for b in tool_uses] == [("Write", "print('hello')\n")]
    result = parsed[-1]
    assert isinstance(result, wire.ResultLine)
    assert (result.is_error, result.total_cost_usd, result.usage.output_tokens) == (False, 0.0016, 40)
    assert result.session_id == init.session_id


def test_control_protocol_ask_user_question():
    parsed = [wire.parse_line(line) for line in _lines(SAMPLES / "claude_control_protocol_stdout.jsonl")]
    requests = [p for p in parsed if isinstance(p, wire.ControlRequestLine)]
    assert len(requests) == 1
    request = requests[0].request
    assert request.subtype == "can_use_tool" and request.tool_name == "AskUserQuestion"
    assert request.input["questions"][0]["options"][0]["label"] == "Python 3"


def test_api_error_result_is_an_error_despite_success_subtype():
    parsed = [wire.parse_line(line) for line in _lines(SAMPLES / "claude_api_error_500_retries.jsonl")]
    retries = [p for p in parsed if isinstance(p, wire.SystemLine) and p.subtype == "api_retry"]
    assert [(r.attempt, r.error_status) for r in retries] == [(1, 500), (2, 500)]
    result = parsed[-1]
    assert isinstance(result, wire.ResultLine)
    assert result.subtype == "success" and result.is_error and result.api_error_status == 500


def test_host_lines_match_what_the_real_cli_accepted():
    """Our stdin lines have the shape of the captured host transcript."""
    captured = [json.loads(line) for line in _lines(SAMPLES / "claude_control_protocol_stdin.jsonl")]
    turn = json.loads(wire.user_turn("Create hello.py that prints hello"))
    assert turn["type"] == captured[1]["type"] and turn["message"] == captured[1]["message"]
    answer = captured[2]["response"]
    ours = json.loads(wire.allow(answer["request_id"], answer["response"]["updatedInput"]))
    assert ours["response"] == answer


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b"not json at all", wire.MalformedLine),
        (b'{"type":"result","is_error":"yes"}', wire.MalformedLine),
        (b'{"type":"a_type_from_the_future","x":1}', wire.UnknownLine),
        (b'{"no_type":1}', wire.MalformedLine),
    ],
)
def test_bad_lines_never_raise(line, kind):
    assert isinstance(wire.parse_line(line), kind)


def test_malformed_line_reports_the_path():
    parsed = wire.parse_line(b'{"type":"result","usage":{"input_tokens":"x"}}')
    assert isinstance(parsed, wire.MalformedLine) and "$.usage.input_tokens" in parsed.error


def test_deny_and_error_responses():
    deny = json.loads(wire.deny("r1", "blocked"))
    assert deny["response"]["response"] == {"behavior": "deny", "message": "blocked", "interrupt": False}
    error = json.loads(wire.control_error("r2", "unsupported"))
    assert error["response"] == {"subtype": "error", "request_id": "r2", "error": "unsupported"}
