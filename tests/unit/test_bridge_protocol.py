"""The bridge's wire protocol against its specification (docs/bridge.md): every message type has its section
naming each of its fields, every in-process message it carries is named, and frames round-trip or are refused."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import msgspec
import pytest

from agentproxy.bridge import protocol

SPEC = (Path(__file__).parents[2] / "docs" / "bridge.md").read_text()
BRIDGE_TYPES = list(typing.get_args(protocol.AnyBridgeMsg))
BY_TAG = {cls.__struct_config__.tag: cls for cls in BRIDGE_TYPES}
# Structs that only travel inside one message type: their fields are specified in that message's section.
NESTED = {"hello": protocol.Held, "assign": protocol.Settings}


def tag_of(cls: type) -> str:
    return cls.__struct_config__.tag


def message_sections() -> dict[str, str]:
    """A message type's section: from its "### tag" heading to the next heading of level 3 or above."""
    parts = re.split(r"^(#{1,3} .*)$", SPEC, flags=re.MULTILINE)
    return {heading.removeprefix("### "): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def sample(tp: typing.Any) -> typing.Any:
    """A builtin value of type tp, for msgspec.convert: every field set, unions by their first member."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        hints = typing.get_type_hints(tp)
        value = {name: sample(hints[name]) for name in tp.__struct_fields__}
        if tp.__struct_config__.tag_field:
            value[tp.__struct_config__.tag_field] = tp.__struct_config__.tag
        return value
    if origin in (typing.Union, types.UnionType):
        return sample(next(arg for arg in typing.get_args(tp) if arg is not type(None)))
    if origin is typing.Literal:
        return typing.get_args(tp)[0]
    if origin is list:
        return [sample(typing.get_args(tp)[0])]
    if origin is dict:
        return {"key": sample(typing.get_args(tp)[1])}
    return {str: "text ✓", int: 7, float: 1.5, bool: True, bytes: b"\x00\xff", typing.Any: {"n": [1]}}[tp]


def example(cls: type, **fields: typing.Any) -> typing.Any:
    return msgspec.convert({**sample(cls), **fields}, cls)


def test_every_message_type_has_its_own_section():
    assert sorted(protocol.message_types()) == sorted(BY_TAG)
    missing = set(protocol.message_types()) - set(message_sections())
    assert not missing, f"no '### <tag>' section in docs/bridge.md for {sorted(missing)}"


@pytest.mark.parametrize("tag", protocol.message_types())
def test_a_message_section_names_every_field(tag):
    section = message_sections()[tag]
    structs = [BY_TAG[tag], *([NESTED[tag]] if tag in NESTED else [])]
    missing = [name for struct in structs for name in struct.__struct_fields__ if f"`{name}`" not in section]
    assert not missing, f"### {tag} does not name {missing}"


@pytest.mark.parametrize(
    ("carrier", "union"), [("deliver", protocol.Downward), ("report", protocol.Upward)], ids=["deliver", "report"]
)
def test_the_in_process_messages_carried_are_named_in_their_carriers_section(carrier, union):
    section = message_sections()[carrier]
    missing = [tag_of(cls) for cls in typing.get_args(union) if f"`{tag_of(cls)}`" not in section]
    assert not missing, f"### {carrier} does not name {missing}"


def test_the_spec_states_the_header():
    assert f"The header is `{protocol.HEADER.decode('ascii')}` exactly" in SPEC


@pytest.mark.parametrize("cls", BRIDGE_TYPES, ids=tag_of)
def test_every_message_type_round_trips(cls):
    message = example(cls)
    parts = protocol.encode(message)
    assert parts[0] == protocol.HEADER
    assert protocol.decode(parts) == message


@pytest.mark.parametrize(
    "message",
    [example(protocol.Deliver, message=sample(cls)) for cls in typing.get_args(protocol.Downward)]
    + [example(protocol.Report, message=sample(cls)) for cls in typing.get_args(protocol.Upward)],
    ids=lambda message: f"{tag_of(type(message))}-{tag_of(type(message.message))}",
)
def test_every_carried_message_round_trips(message):
    assert protocol.decode(protocol.encode(message)) == message


BODY = msgspec.msgpack.encode({"type": "heartbeat"})


@pytest.mark.parametrize(
    "parts",
    [
        [protocol.HEADER],
        [protocol.HEADER, BODY, b""],
        [b"XYZ/1", BODY],
        [protocol.HEADER, b"\xc1 not msgpack"],
        [protocol.HEADER, msgspec.msgpack.encode({"type": "no_such_type"})],
        [protocol.HEADER, msgspec.msgpack.encode({"type": "welcome", "liveness": 3})],
    ],
    ids=["one part", "three parts", "another protocol", "undecodable body", "unknown type", "missing field"],
)
def test_decode_refuses_what_is_not_an_apb_frame(parts):
    with pytest.raises(protocol.MalformedFrame) as raised:
        protocol.decode(parts)
    assert not isinstance(raised.value, protocol.VersionMismatch)


def test_another_version_is_a_mismatch_naming_both_versions():
    other = str(protocol.VERSION + 1)
    ours = re.escape(protocol.HEADER.decode("ascii"))
    with pytest.raises(protocol.VersionMismatch, match=rf"protocol version {other}\b.*\b{ours}\b"):
        protocol.decode([protocol.PROTOCOL + b"/" + other.encode(), BODY])
