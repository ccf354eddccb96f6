"""The rules for one simple command of a Bash line: what it deletes, writes, runs as root or downloads.

``CommandRules.judge`` returns why a command must not run, or None. Reading anywhere is fine except
secrets (~/.ssh and friends); writing, moving and deleting are fine inside the worktree only, and
never inside its .git (hooks and config run code).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from agentproxy.shell import SHELLS, SimpleCommand, find_start_paths
from agentproxy.worktree_paths import WorktreePaths

AS_ROOT = frozenset({"sudo", "su", "doas", "pkexec", "run0"})
DISK_TOOLS = frozenset({"mke2fs", "mkswap", "wipefs", "fdisk", "sfdisk", "sgdisk", "parted"})
FETCHERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "xh"})
SCRIPT_RUNNERS = SHELLS | {"eval", "source", "."}
INTERPRETERS = frozenset({"python", "python3", "perl", "ruby", "node"})  # run stdin when given no script
DELETERS = frozenset({"rm", "rmdir", "unlink", "shred", "srm", "wipe"})
POWER = frozenset({"shutdown", "reboot", "halt", "poweroff"})
_PUBLISHES = "publishes a release"
_MACHINE = "changes the machine, not the project"
# Program -> (subcommands that act outside the project, what they do there).
_BEYOND_THE_PROJECT: dict[str, tuple[frozenset[str], str]] = {
    "npm": (frozenset({"publish", "unpublish", "deprecate"}), _PUBLISHES),
    "pnpm": (frozenset({"publish"}), _PUBLISHES),
    "yarn": (frozenset({"publish", "npm"}), _PUBLISHES),
    "twine": (frozenset({"upload"}), _PUBLISHES),
    "poetry": (frozenset({"publish"}), _PUBLISHES),
    "uv": (frozenset({"publish"}), _PUBLISHES),
    "flit": (frozenset({"publish"}), _PUBLISHES),
    "hatch": (frozenset({"publish"}), _PUBLISHES),
    "cargo": (frozenset({"publish", "yank", "owner"}), _PUBLISHES),
    "gem": (frozenset({"push", "yank"}), _PUBLISHES),
    "mvn": (frozenset({"deploy"}), _PUBLISHES),
    "gh": (frozenset({"release"}), _PUBLISHES),
    "docker": (frozenset({"push", "system", "volume"}), "pushes an image or prunes the docker daemon's state"),
    "systemctl": (
        frozenset({"poweroff", "reboot", "halt", "suspend", "stop", "restart", "disable", "mask", "kill"}),
        _MACHINE,
    ),
    "init": (frozenset({"0", "6"}), _MACHINE),
    "crontab": (frozenset({"-r"}), "removes the user's crontab"),
}
# Program -> options that take a separate argument (so that argument is not an operand).
_OPTIONS_WITH_ARGUMENT: dict[str, frozenset[str]] = {
    "shred": frozenset({"-n", "-s", "--iterations", "--size", "--random-source"}),
    "mv": frozenset({"-t", "-S", "--target-directory", "--suffix"}),
    "cp": frozenset({"-t", "-S", "--target-directory", "--suffix"}),
    "ln": frozenset({"-t", "-S", "--target-directory", "--suffix"}),
    "install": frozenset(
        {"-t", "-S", "-m", "-o", "-g", "--target-directory", "--suffix", "--mode", "--owner", "--group"}
    ),
    "truncate": frozenset({"-s", "-r", "--size", "--reference"}),
    "touch": frozenset({"-r", "-d", "-t", "--reference", "--date"}),
    "mkdir": frozenset({"-m", "--mode"}),
    "chmod": frozenset({"--reference"}),
    "chown": frozenset({"--reference", "--from"}),
    "chgrp": frozenset({"--reference"}),
    "sed": frozenset({"-e", "-f", "-l", "--expression", "--file", "--line-length"}),
    "perl": frozenset({"-e", "-E", "-I", "-M", "-m"}),
}
_MODE = re.compile(r"[0-7]{1,4}|[ugoa]*[-+=][rwxXstugo]*(,[ugoa]*[-+=][rwxXstugo]*)*")
_DANGEROUS_GIT_CONFIG = ("core.hookspath", "core.fsmonitor", "core.sshcommand", "core.gitproxy", "core.pager")
_GIT_VALUE_OPTIONS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--exec-path"})
_GIT_REWRITING = frozenset({"clean", "reset", "checkout", "restore", "rm", "switch", "stash"})
_FORCE_PUSH_OPTIONS = ("--force", "--force-with-lease", "--force-if-includes", "--mirror", "--delete", "--prune")


class CommandRules:
    def __init__(self, paths: WorktreePaths) -> None:
        self.paths = paths

    def judge(self, command: SimpleCommand) -> str | None:
        """Why this command must not run, or None when nothing here objects."""
        cwd = self.paths.cwd_for(command.cd, command.variables)
        return (
            self._as_root(command)
            or self._download_run(command)
            or self._secrets(command, cwd)
            or self._redirections(command, cwd)
            or self._program(command, cwd)
        )

    def _as_root(self, command: SimpleCommand) -> str | None:
        escalating = [p for p in (*command.wrappers, command.program) if p in AS_ROOT]
        return f"{escalating[0]} runs a command as another user" if escalating else None

    def _download_run(self, command: SimpleCommand) -> str | None:
        fetchers = [p for p in command.fed_by if p in FETCHERS]
        if not fetchers:
            return None
        runs_stdin = command.program in INTERPRETERS and command.args in ((), ("-",))
        if command.program in SCRIPT_RUNNERS or runs_stdin:
            return f"a download ({fetchers[0]}) is fed into {command.program} and run"
        return None

    def _secrets(self, command: SimpleCommand, cwd: Path | None) -> str | None:
        words = [*command.words, *(r.target for r in command.redirects)]
        for word in words:
            for candidate in {word, word.partition("=")[2]} - {""}:
                for spot in self.paths.spots(candidate, command.variables, cwd or self.paths.root) or ():
                    if self.paths.secret(spot.path) or self.paths.secret(Path(spot.written)):
                        return f"{command.program or 'the command'} touches {spot.written}, a secrets directory"
        return None

    def _redirections(self, command: SimpleCommand, cwd: Path | None) -> str | None:
        for redirect in command.redirects:
            if redirect.writes and (reason := self.writes(command, cwd, [redirect.target], "redirection to")):
                return reason
        return None

    def _program(self, command: SimpleCommand, cwd: Path | None) -> str | None:
        program, args = command.program, command.args
        if program.startswith("mkfs") or program in DISK_TOOLS:
            return f"{program} formats or repartitions a disk"
        if reason := _beyond_the_project(program, args):
            return reason
        verb = " ".join([program, *[a for a in args if a.startswith("-") and a != "--"][:3]])
        if program in DELETERS:
            return self.writes(command, cwd, operands(args, _OPTIONS_WITH_ARGUMENT.get(program)), verb, delete=True)
        if program == "find" and "-delete" in args:
            starts = [s.rstrip("/") + "/*" for s in find_start_paths(args)]
            return self.writes(command, cwd, starts, "find -delete", delete=True)
        if program == "git":
            return self._git(command, cwd)
        return self.writes(command, cwd, written_operands(program, args), verb) if program else None

    def _git(self, command: SimpleCommand, cwd: Path | None) -> str | None:
        args = list(command.args)
        index, elsewhere = 0, []
        while index < len(args) and args[index].startswith("-"):
            option, _, attached = args[index].partition("=")
            value = (
                attached
                if attached
                else (args[index + 1] if option in _GIT_VALUE_OPTIONS and index + 1 < len(args) else "")
            )
            if _dangerous_git_config(value):
                return f"git {option} {value} makes git run a program of the agent's choosing"
            if option in ("-C", "--work-tree", "--git-dir"):
                elsewhere.append(value)
            index += 1 if attached or option not in _GIT_VALUE_OPTIONS else 2
        subcommand, rest = (args[index], args[index + 1 :]) if index < len(args) else ("", [])
        if subcommand in _GIT_REWRITING and (reason := self.writes(command, cwd, elsewhere, f"git {subcommand} in")):
            return reason
        if subcommand == "clean":
            options = _short_options(rest, with_argument={"-e"})
            if any("x" in o or "X" in o for o in options):
                return "git clean -x deletes ignored files (such as .env) that no commit holds"
        if subcommand == "push":
            return _force_push(rest)
        if subcommand == "config" and any(_dangerous_git_config(a) for a in rest):
            return (
                "git config core.hooksPath (or fsmonitor, sshCommand) makes git run a program of the agent's choosing"
            )
        return None

    def writes(
        self, command: SimpleCommand, cwd: Path | None, targets: Iterable[str], verb: str, delete: bool = False
    ) -> str | None:
        """Why writing (or deleting) these targets is not allowed, or None when all lie inside the worktree."""
        root = self.paths.root
        for target in targets:
            spots = self.paths.spots(target, command.variables, cwd)
            if spots is None:
                return f"{verb} {target}: cannot tell where it points (a variable, $(...) or an unknown cd)"
            for spot in spots:
                shown = target if target == str(spot.path) else f"{target} (= {spot.path})"
                if not delete and self.paths.harmless_device(spot):
                    continue
                if not self.paths.inside(spot):
                    return f"{verb} {shown} outside the worktree {root}"
                if delete and not self.paths.strictly_inside(spot):
                    return f"{verb} {shown}: that is the worktree {root} itself"
                if self.paths.in_git_dir(spot):
                    return f"{verb} {shown} inside .git, whose hooks and config run code"
        return None


def operands(args: Iterable[str], with_argument: frozenset[str] | None = None) -> list[str]:
    """The non-option words of a command (GNU style: options anywhere until `--`)."""
    found: list[str] = []
    words = list(args)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return found + words[index + 1 :]
        if word.startswith("-") and len(word) > 1:
            index += 2 if with_argument and word in with_argument else 1
            continue
        found.append(word)
        index += 1
    return found


def written_operands(program: str, args: tuple[str, ...]) -> list[str]:
    """The files a known writing command writes (empty for programs this module does not know)."""
    with_argument = _OPTIONS_WITH_ARGUMENT.get(program, frozenset())
    named = operands(args, with_argument)
    targets = _option_values(args, ("-t", "--target-directory"))
    if program == "mv":
        return named + targets  # the sources disappear: moving one in deletes it outside
    if program == "ln" and any(a.startswith("--symbolic") or _short_flag(a, "s") for a in args):
        return named  # a link out of the worktree would let later writes through it escape
    if program in ("cp", "ln", "install"):
        if targets or ("-d" in args and program == "install"):
            return targets or named
        return named[-1:] if len(named) > 1 else []
    if program in ("truncate", "touch", "mkdir", "tee"):
        return named
    if program == "chmod":
        return [w for w in named if not _MODE.fullmatch(w)]
    if program in ("chown", "chgrp"):
        return named if any(a.startswith("--reference") for a in args) else named[1:]
    if program == "dd":
        return [a[3:] for a in args if a.startswith("of=")]
    if program in ("sed", "perl") and _in_place(args):
        scripted = any(
            a in ("-e", "-f", "--expression", "--file") or a.startswith(("--expression=", "--file=")) for a in args
        )
        return named if scripted or program == "perl" else named[1:]
    if program == "curl":
        return [
            v
            for v in _option_values(
                args, ("-o", "--output", "-D", "--dump-header", "-c", "--cookie-jar", "--output-dir")
            )
            if v != "-"
        ]
    if program == "wget":
        return [
            v
            for v in _option_values(
                args, ("-O", "--output-document", "-P", "--directory-prefix", "-o", "--output-file")
            )
            if v != "-"
        ]
    return []


def _option_values(args: Iterable[str], names: tuple[str, ...]) -> list[str]:
    words = list(args)
    values = []
    for index, word in enumerate(words):
        option, equals, attached = word.partition("=")
        if word in names and index + 1 < len(words):
            values.append(words[index + 1])
        elif equals and option in names and option.startswith("--"):
            values.append(attached)
        elif len(word) > 2 and word[:2] in names and not word.startswith("--"):
            values.append(word[2:])  # -o/tmp/x
    return values


def _short_flag(word: str, letter: str) -> bool:
    return word.startswith("-") and not word.startswith("--") and letter in word[1:]


def _in_place(args: Iterable[str]) -> bool:
    return any(a.startswith("--in-place") or (a.startswith("-") and not a.startswith("--") and "i" in a) for a in args)


def _short_options(args: Iterable[str], with_argument: set[str]) -> list[str]:
    options, skip = [], False
    for word in args:
        if skip:
            skip = False
        elif word == "--":
            break
        elif word.startswith("-") and not word.startswith("--"):
            options.append(word[1:])
            skip = word in with_argument
    return options


def _beyond_the_project(program: str, args: tuple[str, ...]) -> str | None:
    """A command whose effect leaves the project: the machine's power, processes, services and
    schedule, a published release, files copied to another host."""
    if program in POWER:
        return f"{program} stops the machine"
    words = [a for a in args if not a.startswith("-") or program == "crontab"]
    if program in ("kill", "pkill") and "-1" in _kill_targets(args):
        return f"{program} -1 signals every process of the user"
    if program == "service" and len(words) >= 2 and words[1] in ("stop", "restart", "reload"):
        return f"service {words[0]} {words[1]} {_MACHINE}"
    subcommands, effect = _BEYOND_THE_PROJECT.get(program, (frozenset(), ""))
    if words and words[0] in subcommands:
        return f"{program} {words[0]} {effect}"
    if program in ("scp", "rsync", "sftp") and len(words) >= 2 and _remote(words[-1]):
        return f"{program} copies files to another host ({words[-1]})"
    return None


def _kill_targets(args: tuple[str, ...]) -> tuple[str, ...]:
    """kill's process ids: after a signal option (-9, -KILL, -s SIG) and --."""
    rest = list(args)
    if rest and rest[0] in ("-s", "-n"):
        rest = rest[2:]
    elif len(rest) > 1 and rest[0].startswith("-") and rest[0] != "--":
        rest = rest[1:]
    return tuple(rest[1:] if rest[:1] == ["--"] else rest)


def _remote(word: str) -> bool:
    """host:path or user@host:path, not a local path with a colon in it."""
    head, colon, _ = word.partition(":")
    return bool(colon) and bool(head) and "/" not in head


def _force_push(args: list[str]) -> str | None:
    words = [w for i, w in enumerate(args) if not (i > 0 and args[i - 1] in ("-o", "--push-option", "--repo"))]
    for word in words:
        if word.startswith(_FORCE_PUSH_OPTIONS):
            return f"git push {word.partition('=')[0]} rewrites or deletes remote history"
        if word.startswith("-") and not word.startswith("--") and ("f" in word or "d" in word):
            return f"git push {word} forces or deletes on the remote"
    refspecs = operands(words, frozenset({"-o", "--push-option", "--repo"}))[1:]
    for refspec in refspecs:
        if refspec.startswith("+"):
            return f"git push {refspec}: a + refspec forces the update"
        if refspec.startswith(":"):
            return f"git push {refspec}: an empty source deletes the remote branch"
    return None


def _dangerous_git_config(text: str) -> bool:
    lowered = text.lower()
    return any(key in lowered for key in _DANGEROUS_GIT_CONFIG)
