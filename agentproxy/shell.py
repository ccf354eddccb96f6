"""Bash command lines taken apart into the simple commands they run, for the approval policy.

``parse_bash`` walks bashlex's tree: lists, pipelines, subshells, loops, functions, command and
process substitutions; it unwraps ``bash -c``/``eval`` strings and prefixes such as ``sudo``,
``env``, ``xargs`` or ``timeout`` to find the real program. Where bashlex gives up (``[[``,
``case``, ``$((``), a shlex split does the same job more roughly. Quotes are removed; variables,
``~`` and globs stay as written: resolving them is the policy's job. Never raises.
"""

from __future__ import annotations

import codecs
import functools
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

MAX_COMMAND_CHARS = 50_000  # longer command lines are not parsed (bashlex is slow and recursive)
MAX_DEPTH = 6  # nested bash -c / eval / substitutions followed
MAX_NESTING = 60  # brackets deep enough to threaten Python's recursion limit are not parsed
MAX_COMMANDS = 500

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "csh", "tcsh", "ash"})
# Wrapper -> its options that take a separate argument; the real command follows them.
WRAPPERS: Mapping[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "-C", "--unset", "--chdir"}),
    "nohup": frozenset(),
    "xargs": frozenset({"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter", "--max-args"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-P", "-u"}),
    "time": frozenset({"-f", "-o", "--format", "--output"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "setsid": frozenset(),
    "chronic": frozenset(),
    "caffeinate": frozenset(),
}
_TAKES_POSITIONAL = frozenset({"timeout"})  # timeout DURATION COMMAND
_FIND_ACTIONS = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_QUOTED_HEREDOC = re.compile(r"<<(-?)\s*(['\"])([A-Za-z0-9_.-]+)\2")
_ESCAPED_HEREDOC = re.compile(r"<<(-?)\s*\\([A-Za-z0-9_.-]+)")
_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'")
_LOCALE_QUOTE = re.compile(r'(?<!\\)\$"')
_TIME_PREFIX = re.compile(r"(^|[;&|(!]\s*|\n\s*)time\s+(-p\s+)?")
_KEYWORDS = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "{",
        "}",
        "!",
        "[[",
        "]]",
        "case",
        "esac",
        "in",
        "function",
        "select",
        "coproc",
    }
)

Parser = Literal["bashlex", "shlex"]


@dataclass(frozen=True)
class Redirect:
    op: str  # ">", ">>", "&>", "<", ">&" ...
    target: str  # a file word as written, or "&N" for a file-descriptor duplication

    @property
    def writes(self) -> bool:
        return self.op != "<<<" and (">" in self.op or self.op == "<>") and not self.target.startswith("&")


@dataclass(frozen=True)
class SimpleCommand:
    words: tuple[str, ...]  # the real command, quotes removed, wrappers stripped
    redirects: tuple[Redirect, ...] = ()
    wrappers: tuple[str, ...] = ()  # programs that launched it: ("sudo", "xargs")
    fed_by: tuple[str, ...] = ()  # programs whose output it consumes: earlier pipeline stages, substitutions
    cd: tuple[str, ...] | None = ()  # `cd` arguments run before it on the line; None: an unknown directory
    variables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # NAME -> possible values

    @property
    def program(self) -> str:
        return self.words[0].rsplit("/", 1)[-1] if self.words else ""

    @property
    def args(self) -> tuple[str, ...]:
        return self.words[1:]


@dataclass(frozen=True)
class ParsedCommand:
    commands: tuple[SimpleCommand, ...]
    parser: Parser
    self_calling_functions: tuple[str, ...] = ()  # fork-bomb shape: a function that pipes into itself
    too_deep: bool = False  # a bash -c / eval nested past MAX_DEPTH was not read


@dataclass
class _Scope:
    cd: tuple[str, ...] | None = ()
    variables: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def subshell(self) -> _Scope:
        return _Scope(self.cd, dict(self.variables))


class _Walker:
    def __init__(self, text: str) -> None:
        self.text = text  # what bashlex parsed: node positions point into it
        self.out: list[SimpleCommand] = []
        self.self_calling: list[str] = []
        self.too_deep = False

    def emit(self, command: SimpleCommand, depth: int) -> list[SimpleCommand]:
        """The command, plus whatever it runs inside itself (bash -c, eval, find -exec)."""
        if len(self.out) >= MAX_COMMANDS:
            raise _TooBig
        wrappers, words = unwrap(command.words)
        command = replace(command, words=words, wrappers=command.wrappers + wrappers)
        self.out.append(command)
        emitted = [command]
        inner = _inner_script(command)
        self.too_deep |= inner is not None and depth >= MAX_DEPTH
        if inner is not None and depth < MAX_DEPTH:
            nested, _, self_calling, too_deep = _commands_of(inner, depth + 1)
            self.self_calling += self_calling
            self.too_deep |= too_deep
            for child in nested:
                child = replace(
                    child,
                    wrappers=(*command.wrappers, command.program, *child.wrappers),
                    fed_by=command.fed_by + child.fed_by,
                    cd=_join_cd(command.cd, child.cd),
                    variables={**command.variables, **child.variables},
                )
                self.out.append(child)
                emitted.append(child)
        for executed in _find_exec_commands(command):
            emitted += self.emit(executed, depth + 1)
        return emitted

    def word(self, node: Any) -> str:
        """A word with its quotes removed: bashlex's own removal fails on 'a'"'"'b' and $'...'."""
        start, end = getattr(node, "pos", (0, 0))
        raw = self.text[start:end] if 0 <= start < end <= len(self.text) else ""
        unquoted = unquote(raw) if raw else None
        return unquoted if unquoted is not None else str(getattr(node, "word", ""))

    def walk(self, node: Any, scope: _Scope, depth: int, fed_by: tuple[str, ...] = ()) -> list[SimpleCommand]:
        kind = getattr(node, "kind", "")
        if kind == "command":
            return self.command(node, scope, depth, fed_by)
        if kind == "pipeline":
            emitted: list[SimpleCommand] = []
            for part in node.parts:
                if getattr(part, "kind", "") in ("pipe", "reservedword"):
                    continue
                stage = self.walk(part, scope.subshell(), depth, fed_by + tuple(c.program for c in emitted))
                emitted += stage
            return emitted
        if kind == "compound":
            inner_scope = scope.subshell() if _opens_subshell(node) else scope
            emitted = []
            for part in node.list:
                emitted += self.walk(part, inner_scope, depth, fed_by)
            return emitted + self.redirected(node, scope, depth, emitted)
        if kind == "for":
            return self.for_loop(node, scope, depth, fed_by)
        if kind == "function":
            return self.function(node, scope, depth)
        emitted = []
        for child in _children(node):
            emitted += self.walk(child, scope, depth, fed_by)
        return emitted

    def command(self, node: Any, scope: _Scope, depth: int, fed_by: tuple[str, ...]) -> list[SimpleCommand]:
        words: list[str] = []
        redirects: list[Redirect] = []
        assignments: list[str] = []
        substituted: list[SimpleCommand] = []
        for part in node.parts:
            part_kind = getattr(part, "kind", "")
            if part_kind == "word":
                words.append(self.word(part))
            elif part_kind == "assignment":
                assignments.append(self.word(part))
            elif part_kind == "redirect":
                redirect, inner = self.redirect(part, scope, depth)
                redirects += redirect
                substituted += inner
                continue
            substituted += self.substitutions(part, scope, depth)
        if not words:
            for assignment in assignments:
                name, _, value = assignment.partition("=")
                scope.variables[name] = (value,)
        fed = fed_by + tuple(c.program for c in substituted)
        own = SimpleCommand(tuple(words), tuple(redirects), (), fed, scope.cd, dict(scope.variables))
        emitted = self.emit(own, depth) if words or redirects else []
        if words and own.program in ("cd", "pushd"):
            scope.cd = _join_cd(scope.cd, (words[1] if len(words) > 1 else "~",))
        return substituted + emitted

    def redirect(self, node: Any, scope: _Scope, depth: int) -> tuple[list[Redirect], list[SimpleCommand]]:
        target = node.output
        inner: list[SimpleCommand] = []
        heredoc = getattr(node, "heredoc", None)
        if heredoc is not None:
            inner += self.heredoc_substitutions(heredoc.value, scope, depth)
            return [], inner
        if isinstance(target, int):
            return [Redirect(node.type, f"&{target}")], inner
        inner += self.substitutions(target, scope, depth)
        word = self.word(target)
        if node.type in (">&", "<&") and (word.isdigit() or word == "-"):
            word = "&" + word
        return [Redirect(node.type, word)], inner

    def redirected(self, node: Any, scope: _Scope, depth: int, emitted: list[SimpleCommand]) -> list[SimpleCommand]:
        """A compound's own redirections (`{ ...; } > file`) as one more command that writes there."""
        redirects: list[Redirect] = []
        inner: list[SimpleCommand] = []
        for redirect_node in getattr(node, "redirects", None) or ():
            redirect, substituted = self.redirect(redirect_node, scope, depth)
            redirects += redirect
            inner += substituted
        if not redirects:
            return inner
        own = SimpleCommand((), tuple(redirects), (), (), scope.cd, dict(scope.variables))
        self.out.append(own)
        return [*inner, own]

    def substitutions(self, node: Any, scope: _Scope, depth: int) -> list[SimpleCommand]:
        emitted: list[SimpleCommand] = []
        for child in _children(node):
            if getattr(child, "kind", "") in ("commandsubstitution", "processsubstitution"):
                emitted += self.walk(child.command, scope.subshell(), depth + 1)
            else:
                emitted += self.substitutions(child, scope, depth)
        return emitted

    def heredoc_substitutions(self, body: str, scope: _Scope, depth: int) -> list[SimpleCommand]:
        # An unquoted here-document runs its $(...) and `...`; read it as a double-quoted word.
        if "$(" not in body and "`" not in body:
            return []
        text = "echo " + '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'
        try:
            trees = load_bashlex().parse(text)
        except Exception:
            return []
        reader = _Walker(text)
        emitted: list[SimpleCommand] = []
        for tree in trees:
            emitted += reader.substitutions(tree, scope, depth)
        self.out += reader.out
        self.self_calling += reader.self_calling
        self.too_deep |= reader.too_deep
        return emitted

    def for_loop(self, node: Any, scope: _Scope, depth: int, fed_by: tuple[str, ...]) -> list[SimpleCommand]:
        parts = list(node.parts)
        names = [p for p in parts if getattr(p, "kind", "") == "word"]
        emitted: list[SimpleCommand] = []
        if names:
            in_index = next((i for i, p in enumerate(parts) if getattr(p, "word", None) == "in"), None)
            values = []
            if in_index is not None:
                for part in parts[in_index + 1 :]:
                    if getattr(part, "kind", "") != "word":
                        break
                    values.append(self.word(part))
                    emitted += self.substitutions(part, scope, depth)
            scope.variables[names[0].word] = tuple(values) if values else ("$@",)
        for part in parts:
            if getattr(part, "kind", "") not in ("word", "reservedword"):
                emitted += self.walk(part, scope, depth, fed_by)
        return emitted

    def function(self, node: Any, scope: _Scope, depth: int) -> list[SimpleCommand]:
        name = getattr(node, "name", None)
        function_name = getattr(name, "word", "")
        emitted: list[SimpleCommand] = []
        for part in node.parts:
            if getattr(part, "kind", "") not in ("word", "reservedword"):
                emitted += self.walk(part, scope.subshell(), depth)
        if function_name and any(c.program == function_name for c in emitted):
            self.self_calling.append(function_name)
        return emitted


class _TooBig(Exception):
    """More simple commands than the policy will read."""


def parse_bash(command: str) -> ParsedCommand | None:
    """The simple commands of a Bash command line, or None when neither bashlex nor shlex can read it."""
    try:
        return _parse(command)
    except Exception:
        return None


def _parse(command: str) -> ParsedCommand | None:
    if len(command) > MAX_COMMAND_CHARS or "\0" in command:
        return None
    try:
        commands, parser, self_calling, too_deep = _commands_of(command, 0)
    except _TooBig:
        return None
    return ParsedCommand(tuple(commands), parser, tuple(self_calling), too_deep)


def _commands_of(script: str, depth: int) -> tuple[list[SimpleCommand], Parser, list[str], bool]:
    """Through bashlex when it can read the script, else through shlex (raises shlex's ValueError)."""
    parsed = _bashlex_trees(script) if _nesting(script) <= MAX_NESTING else None
    if parsed is not None:
        trees, text = parsed
        walker = _Walker(text)
        try:
            for tree in trees:
                walker.walk(tree, _Scope(), depth)
            return walker.out, "bashlex", walker.self_calling, walker.too_deep
        except _TooBig:
            raise
        except Exception:
            walker.out.clear()
    walker = _Walker(script)
    for simple in _shlex_commands(script):
        walker.emit(simple, depth)
    return walker.out, "shlex", [], walker.too_deep


@functools.cache
def load_bashlex() -> Any:
    """bashlex, imported on first use: building its parser tables takes ~0.2 s (the runtime warms it up)."""
    import bashlex  # type: ignore[import-untyped]

    return bashlex


def _bashlex_trees(command: str) -> tuple[list[Any], str] | None:
    """bashlex's trees and the text they index (here-document delimiters unquoted, `time` dropped)."""
    if not command.strip():
        return [], command
    text = _QUOTED_HEREDOC.sub(r"<<\1\3", command)  # bashlex wants the delimiter unquoted
    text = _ESCAPED_HEREDOC.sub(r"<<\1\2", text)
    text = _TIME_PREFIX.sub(r"\1", text)  # bashlex has no `time` keyword
    try:
        return list(load_bashlex().parse(text)), text
    except Exception:
        return None


def unquote(raw: str) -> str | None:
    """The one word Bash makes of ``raw`` after quote removal, or None when it is not one plain word."""
    text = _ANSI_C.sub(lambda match: shlex.quote(_ansi_c(match.group(1))), raw)
    text = _LOCALE_QUOTE.sub('"', text)
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    return words[0] if len(words) == 1 else None


def _ansi_c(body: str) -> str:
    try:
        return codecs.decode(body.encode("latin-1", "backslashreplace"), "unicode_escape")
    except ValueError:  # an escape Python does not know: keep the text
        return body


def unwrap(words: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(wrappers, real command): `sudo -u x env A=1 nice -n 5 rm -rf /` -> (sudo, env, nice), rm -rf /."""
    wrappers: list[str] = []
    while words:
        program = words[0].rsplit("/", 1)[-1]
        if program not in WRAPPERS:
            break
        wrappers.append(program)
        rest = _skip_options(words[1:], WRAPPERS[program], assignments=program in ("env", "sudo", "doas"))
        if program in _TAKES_POSITIONAL and rest:
            rest = rest[1:]
        if program == "command" and words[1:2] in (("-v",), ("-V",)):
            rest = ()  # `command -v x` only looks x up
        words = rest
    return tuple(wrappers), words


def _skip_options(words: tuple[str, ...], with_argument: frozenset[str], assignments: bool) -> tuple[str, ...]:
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return words[index + 1 :]
        if word.startswith("-") and len(word) > 1:
            index += 2 if word in with_argument else 1
        elif assignments and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word, re.DOTALL):
            index += 1
        else:
            break
    return words[index:]


def _inner_script(command: SimpleCommand) -> str | None:
    """The script a command runs from a string: `bash -c SCRIPT`, `eval ARGS`, `env -S STRING`."""
    if command.program == "eval":
        return " ".join(command.args)
    if command.program not in SHELLS:
        return None
    for index, word in enumerate(command.args):
        if word == "--" or not word.startswith(("-", "+")):
            return None
        if word.startswith("-") and not word.startswith("--") and "c" in word[1:]:
            operands = [w for w in command.args[index + 1 :] if not w.startswith("-")]
            return operands[0] if operands else None
    return None


def _find_exec_commands(command: SimpleCommand) -> list[SimpleCommand]:
    """`find P -exec rm -rf {} ;` runs `rm -rf P/*`: each path it finds lies under a start path."""
    if command.program != "find":
        return []
    starts = find_start_paths(command.args)
    found: list[SimpleCommand] = []
    args = list(command.args)
    for index, word in enumerate(args):
        if word not in _FIND_ACTIONS:
            continue
        end = next((i for i in range(index + 1, len(args)) if args[i] in (";", "+", "\\;")), len(args))
        template = args[index + 1 : end]
        for start in starts:
            words = tuple(w.replace("{}", start.rstrip("/") + "/*") for w in template)
            if words:
                found.append(replace(command, words=words, redirects=(), wrappers=(*command.wrappers, "find")))
    return found


def find_start_paths(args: Iterable[str]) -> list[str]:
    """The directories `find` searches: its operands before the first expression word."""
    starts: list[str] = []
    words = list(args)
    index = 0
    while index < len(words) and re.fullmatch(r"-[HLPDO]|-O\d", words[index]):  # find's options before its paths
        index += 2 if words[index] == "-D" else 1
    for word in words[index:]:
        if word.startswith(("-", "(", "!", ")")):
            break
        starts.append(word)
    return starts or ["."]


def _join_cd(before: tuple[str, ...] | None, after: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if before is None or after is None:
        return None
    if after and after[-1] == "-":
        return None  # `cd -`: wherever the shell was before
    return before + after


def _opens_subshell(node: Any) -> bool:
    first = node.list[0] if getattr(node, "list", None) else None
    return getattr(first, "word", None) == "("


def _children(node: Any) -> list[Any]:
    children: list[Any] = []
    for attribute in ("parts", "list"):
        value = getattr(node, attribute, None)
        if isinstance(value, list):
            children += value
    command = getattr(node, "command", None)
    if command is not None and hasattr(command, "kind"):
        children.append(command)
    return children


def _nesting(command: str) -> int:
    deepest = depth = 0
    for char in command:
        if char in "({[`":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")}]":
            depth = max(0, depth - 1)
    return deepest


# --- the rough way: shlex ----------------------------------------------------------------------


def _shlex_commands(script: str) -> list[SimpleCommand]:
    commands: list[SimpleCommand] = []
    cd: tuple[str, ...] | None = ()
    upstream: tuple[str, ...] = ()
    for tokens, piped in _shlex_segments(script):
        upstream = upstream if piped else ()
        simple = _shlex_command(tokens, cd, upstream)
        if simple is None:
            continue
        commands.append(simple)
        real = unwrap(simple.words)[1]
        program = real[0].rsplit("/", 1)[-1] if real else ""
        upstream += (program,)
        if program in ("cd", "pushd"):
            cd = _join_cd(cd, (real[1] if len(real) > 1 else "~",))
    return commands


def _shlex_segments(script: str) -> list[tuple[list[str], bool]]:
    """Words split at control operators, each with whether the previous segment pipes into it."""
    text = _LOCALE_QUOTE.sub('"', _ANSI_C.sub(lambda match: shlex.quote(_ansi_c(match.group(1))), script))
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    segments: list[tuple[list[str], bool]] = [([], False)]
    for token in lexer:
        if token and set(token) <= set(";&|()") and token not in ("&>", ">&"):
            segments.append(([], token in ("|", "|&")))
        else:
            segments[-1][0].append(token)
    return [(tokens, piped) for tokens, piped in segments if tokens]


def _shlex_command(tokens: list[str], cd: tuple[str, ...] | None, fed_by: tuple[str, ...]) -> SimpleCommand | None:
    words: list[str] = []
    redirects: list[Redirect] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token and set(token) <= set("<>&"):
            target = tokens[index + 1] if index + 1 < len(tokens) else ""
            if words and words[-1].isdigit():
                words.pop()  # the fd number of `2>`
            redirects.append(Redirect(token, "&" + target if target.isdigit() or target == "-" else target))
            index += 2
            continue
        words.append(token)
        index += 1
    while words and words[0] in _KEYWORDS:
        words.pop(0)
    if not words and not redirects:
        return None
    return SimpleCommand(tuple(words), tuple(redirects), fed_by=fed_by, cd=cd)
