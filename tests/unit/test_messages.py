"""Every message and event round-trips through JSON and msgpack unchanged."""

from __future__ import annotations

import typing

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentproxy import messages as m


def _members(union) -> list[type]:
    return list(typing.get_args(union))


def _example(cls: type):
    """An instance of cls with every field set to a non-default value of its type."""
    return msgspec.convert(_sample_for(cls), cls)


def _sample_for(tp):
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        hints = typing.get_type_hints(tp)
        body = {f: _sample_for(hints[f]) for f in tp.__struct_fields__}
        if tp.__struct_config__.tag_field:
            body[tp.__struct_config__.tag_field] = tp.__struct_config__.tag
        return body
    if origin is typing.Literal:
        return typing.get_args(tp)[-1]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return _sample_for(next(a for a in typing.get_args(tp) if a is not type(None)))
    if origin is list:
        return [_sample_for(typing.get_args(tp)[0])]
    if origin is dict:
        return {"key": _sample_for(typing.get_args(tp)[1])}
    return {str: "text ✓", int: 7, float: 1.5, bool: True, typing.Any: {"nested": [1, "x"]}}[tp]


EVENT_CLASSES = _members(m.AnyEvent)
MSG_CLASSES = _members(m.AnyMsg)


def test_every_event_and_message_has_a_unique_tag():
    tags = [c.__struct_config__.tag for c in EVENT_CLASSES]
    assert len(tags) == len(set(tags)) == len(EVENT_CLASSES)
    tags = [c.__struct_config__.tag for c in MSG_CLASSES]
    assert len(tags) == len(set(tags)) == len(MSG_CLASSES)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_event_round_trip(cls):
    event = _example(cls)
    assert m.event_json_decoder.decode(m.to_json(event)) == event
    assert m.event_msgpack_decoder.decode(m.to_msgpack(event)) == event


@pytest.mark.parametrize("cls", MSG_CLASSES, ids=lambda c: c.__name__)
def test_message_round_trip(cls):
    message = _example(cls)
    assert m.msg_json_decoder.decode(m.to_json(message)) == message
    assert m.msg_msgpack_decoder.decode(m.to_msgpack(message)) == message


def test_messages_are_frozen():
    notice = m.Notice(text="hi")
    with pytest.raises(AttributeError):
        notice.text = "changed"  # type: ignore[misc]


def test_an_older_peer_decodes_a_newer_message_with_extra_fields():
    newer = b'{"kind":"notice","text":"hi","level":"info","added_in_a_later_version":1}'
    assert m.event_json_decoder.decode(newer) == m.Notice(text="hi")


def test_a_bad_message_reports_the_path():
    with pytest.raises(msgspec.ValidationError, match=r"\$\.usage\.input_tokens"):
        m.event_json_decoder.decode(
            b'{"kind":"agent_finished","subtask_id":"1","agent_session_id":"a","is_error":false,'
            b'"usage":{"input_tokens":"many"}}'
        )


texts = st.text(max_size=200)


@given(
    subtask_id=texts,
    answers=st.dictionaries(texts, texts, max_size=5),
    by=texts,
    at=st.floats(allow_nan=False, allow_infinity=False),
)
def test_question_answered_round_trips_any_text(subtask_id, answers, by, at):
    event = m.QuestionAnswered(subtask_id=subtask_id, answers=answers, by=by, at=at)
    assert m.event_json_decoder.decode(m.to_json(event)) == event
    assert m.event_msgpack_decoder.decode(m.to_msgpack(event)) == event


@given(
    tool_input=st.dictionaries(
        texts, st.one_of(texts, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none()), max_size=6
    )
)
def test_judge_tool_carries_arbitrary_tool_input(tool_input):
    message = m.JudgeTool(worker="w", subtask_id="1", request_id="r", tool_name="Bash", tool_input=tool_input)
    assert m.msg_msgpack_decoder.decode(m.to_msgpack(message)) == message
