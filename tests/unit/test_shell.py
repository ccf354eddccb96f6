"""Bash command lines taken apart: simple commands, their words, redirections, wrappers and inputs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentproxy.shell import (
    MAX_COMMAND_CHARS,
    ParsedCommand,
    Redirect,
    parse_bash,
    unquote,
    unwrap,
)


def _parsed(command: str) -> ParsedCommand:
    parsed = parse_bash(command)
    assert parsed is not None, command
    return parsed


def _words(command: str) -> list[tuple[str, ...]]:
    return [c.words for c in _parsed(command).commands]


def test_lists_pipelines_and_subshells_are_split_into_simple_commands() -> None:
    assert _words("a 1; b 2 && c || (d | e)") == [("a", "1"), ("b", "2"), ("c",), ("d",), ("e",)]


def test_quotes_are_removed_including_the_ones_bashlex_gets_wrong() -> None:
    assert _words("""rm -rf "/" '/x' a'b'c 'it'"'"'s' $'\\x2f' $"/" """) == [
        ("rm", "-rf", "/", "/x", "abc", "it's", "/", "/")
    ]
    assert unquote("$(ls -l)") is None  # not one plain word: the caller keeps bashlex's reading


def test_wrappers_are_stripped_and_remembered() -> None:
    (command,) = _parsed("sudo -u root env A=1 nice -n 5 timeout 10 nohup rm -rf /").commands
    assert command.words == ("rm", "-rf", "/")
    assert command.wrappers == ("sudo", "env", "nice", "timeout", "nohup")
    assert unwrap(("command", "-v", "rm")) == (("command",), ())


def test_bash_c_and_eval_strings_are_parsed_too() -> None:
    parsed = _parsed("bash -lc 'cd /tmp && rm -rf x' ; eval \"echo hi > out\"")
    inner = [c for c in parsed.commands if c.wrappers]
    assert [c.words for c in inner] == [("cd", "/tmp"), ("rm", "-rf", "x"), ("echo", "hi")]
    assert inner[1].cd == ("/tmp",)
    assert inner[2].redirects == (Redirect(">", "out"),)


def test_substitutions_are_commands_and_feed_the_command_around_them() -> None:
    parsed = _parsed('bash <(curl x); sh -c "$(wget -qO- y)"; curl z | tee f | sh')
    by_program = {c.program: c for c in parsed.commands}
    assert ("curl", "x") in [c.words for c in parsed.commands]
    assert by_program["bash"].fed_by == ("curl",)
    assert [c.fed_by for c in parsed.commands if c.program == "sh"][-1] == ("curl", "tee")
    assert "wget" in next(c.fed_by for c in parsed.commands if c.program == "sh")


def test_redirections_keep_their_targets_and_fd_duplications() -> None:
    (command,) = _parsed("cmd > out 2>&1 >> log &> both 2>/dev/null < in").commands
    assert command.redirects == (
        Redirect(">", "out"),
        Redirect(">&", "&1"),
        Redirect(">>", "log"),
        Redirect("&>", "both"),
        Redirect(">", "/dev/null"),
        Redirect("<", "in"),
    )
    assert [r.writes for r in command.redirects] == [True, False, True, True, True, False]


def test_cd_is_followed_within_the_line_but_not_out_of_a_subshell() -> None:
    commands = _parsed("(cd /tmp && ls) && cd src && rm x; cd - && rm y").commands
    assert [(c.program, c.cd) for c in commands if c.program in ("ls", "rm")] == [
        ("ls", ("/tmp",)),
        ("rm", ("src",)),
        ("rm", None),
    ]


def test_variables_set_on_the_line_and_loop_variables_are_known() -> None:
    commands = _parsed("d=/etc; for f in a b; do rm -rf $d/$f; done").commands
    assert commands[-1].variables == {"d": ("/etc",), "f": ("a", "b")}


def test_find_exec_runs_its_command_under_each_start_path() -> None:
    words = _words("find / ~ -name x -exec rm -rf {} \\;")
    assert words[1:] == [("rm", "-rf", "/*"), ("rm", "-rf", "~/*")]


def test_here_documents_parse_with_quoted_delimiters_and_run_their_substitutions() -> None:
    assert _words("cat <<'EOF' > notes.md\n# hi\nEOF") == [("cat",)]
    assert ("rm", "-rf", "~") in _words("cat <<EOF > notes.md\n$(rm -rf ~)\nEOF")


def test_a_self_calling_function_is_reported() -> None:
    assert _parsed(":(){ :|:& };:").self_calling_functions == (":",)
    assert _parsed("f() { echo hi; }; f").self_calling_functions == ()


def test_what_bashlex_cannot_parse_is_split_with_shlex() -> None:
    parsed = _parsed("[[ -f x ]] && rm -rf /tmp/y | sh")
    assert parsed.parser == "shlex"
    assert ("rm", "-rf", "/tmp/y") in [c.words for c in parsed.commands]
    assert parsed.commands[-1].fed_by == ("rm",)


def test_unreadable_input_gives_none() -> None:
    assert parse_bash('echo "unclosed') is None
    assert parse_bash("a\0b") is None
    assert parse_bash("x" * (MAX_COMMAND_CHARS + 1)) is None


def test_nesting_too_deep_for_bashlex_is_split_with_shlex() -> None:
    parsed = _parsed("(" * 5000 + "rm -rf /" + ")" * 5000)
    assert parsed.parser == "shlex"
    assert [c.words for c in parsed.commands] == [("rm", "-rf", "/")]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"ab -c;|&()<>{}$`'\"\\~*\n=#!:", "bash -c ", "$(", "<<EOF\n", "for i in "]), max_size=40
    ).map("".join)
)
def test_parse_bash_never_raises(command: str) -> None:
    parsed = parse_bash(command)
    assert parsed is None or isinstance(parsed, ParsedCommand)
