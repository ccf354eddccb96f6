"""docs/remote.md and examples/remote/ against what they describe: every flag they use is a flag of its CLI,
every worker command carries what the worker needs, and the files that refer to each other agree."""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentproxy.cli import app

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs" / "remote.md"
EXAMPLES = ROOT / "examples" / "remote"
UNIT = EXAMPLES / "pa-worker.service"
DEPLOYMENT = EXAMPLES / "k8s" / "worker-deployment.yaml"
SECRET = EXAMPLES / "k8s" / "worker-secret.yaml"

# The bridge's flags: the one place the tests name them. pa gets them and pa-worker is written alongside
# these docs; once both exist, check against their --help as pa's other flags are (pa_help_flags).
PA_BRIDGE_FLAGS = frozenset(
    {"--listen", "--listen-insecure", "--authorized-keys", "--local-slots", "--heartbeat", "--liveness"}
)
PA_WORKER_FLAGS = frozenset(
    {
        "--connect",
        "--server-key",
        "--key",
        "--slots",
        "--name",
        "--dir",
        "--claude-bin",
        "--insecure",
        "--heartbeat",
        "--liveness",
        "--help",
    }
)
PA_WORKER_KEYGEN_FLAGS = frozenset({"--dir", "--help"})
WORKER_NEEDS = ("--connect", "--server-key", "--key")  # without --insecure: where, whom to trust, who it is
HAND_BACK_S = 30  # the least time the examples leave a stopped worker to hand its assignments back
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
SUDO_OPTIONS_WITH_VALUE = {"-u", "-g"}


@dataclass(frozen=True)
class Invocation:
    program: str  # "pa", "pa-worker" or "pa-worker keygen"
    args: tuple[str, ...]

    def flags(self) -> set[str]:
        return {word.partition("=")[0] for word in self.args if re.match(r"-{1,2}[A-Za-z]", word)}

    def value(self, flag: str) -> str:
        return self.args[self.args.index(flag) + 1]


# -- reading the files ---------------------------------------------------------------------------


@functools.cache
def pa_help_flags() -> frozenset[str]:
    """The option names in `pa --help`: the first column of its Options section."""
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    names: set[str] = set()
    for match in re.finditer(r"^  (-\S.*?)(?:\s{2,}|$)", result.output, re.MULTILINE):
        names.update(part.split()[0] for part in match.group(1).split(", "))
    return frozenset(names)


def allowed_flags(program: str) -> frozenset[str]:
    return {
        "pa": pa_help_flags() | PA_BRIDGE_FLAGS,
        "pa-worker": PA_WORKER_FLAGS,
        "pa-worker keygen": PA_WORKER_KEYGEN_FLAGS,
    }[program]


def joined_lines(text: str) -> list[str]:
    """Lines with their backslash continuations joined, as a shell or systemd reads them."""
    return re.sub(r"\\\n", " ", text).splitlines()


def shell_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ; && || | and the like), comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if set(token) <= set("();<>|&"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def invocation(words: list[str]) -> Invocation | None:
    """The pa or pa-worker command in words, behind sudo and VAR=value prefixes; None for other programs."""
    words = without_prefixes(words)
    if not words:
        return None
    program = Path(words[0]).name
    if re.fullmatch(r"python[\d.]*", program) and words[1:2] == ["-m"] and len(words) > 2:
        program = {"agentproxy": "pa", "agentproxy.worker": "pa-worker"}.get(words[2], program)
        words = words[2:]
    if program == "pa-worker" and words[1:2] == ["keygen"]:
        return Invocation("pa-worker keygen", tuple(words[2:]))
    if program in ("pa", "pa-worker"):
        return Invocation(program, tuple(words[1:]))
    return None


def without_prefixes(words: list[str]) -> list[str]:
    rest = list(words)
    while rest and re.fullmatch(r"[A-Za-z_]\w*=.*", rest[0]):
        rest.pop(0)
    if rest[:1] == ["sudo"]:
        rest.pop(0)
        while rest and rest[0].startswith("-"):
            rest = rest[2:] if rest[0] in SUDO_OPTIONS_WITH_VALUE else rest[1:]
    return rest


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)


def inline_code(markdown: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return [" ".join(span.split()) for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose)]


def doc_commands() -> list[list[str]]:
    """Every simple command in the shell blocks and inline code of docs/remote.md."""
    markdown = DOCS.read_text()
    lines = [line for kind, body in fenced_blocks(markdown) if kind in SHELL_BLOCKS for line in joined_lines(body)]
    return [command for line in [*lines, *inline_code(markdown)] for command in shell_commands(line)]


def doc_invocations() -> list[Invocation]:
    return [found for command in doc_commands() if (found := invocation(command))]


def unit_settings() -> dict[str, dict[str, str]]:
    """The systemd unit's sections and settings (each key once in these examples)."""
    sections: dict[str, dict[str, str]] = {}
    section: dict[str, str] = {}
    for raw in joined_lines(UNIT.read_text()):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section[key.strip()] = value.strip()
    return sections


def unit_invocation() -> Invocation:
    found = invocation(shlex.split(unit_settings()["Service"]["ExecStart"]))
    assert found is not None, "the unit's ExecStart does not run pa-worker"
    return found


def seconds(timespan: str) -> int:
    match = re.fullmatch(r"(\d+)\s*(s|sec)?", timespan)
    assert match, f"{timespan!r}: give the time in seconds"
    return int(match.group(1))


def the_one(path: Path, kind: str) -> dict[str, Any]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    [document] = [doc for doc in documents if doc["kind"] == kind]
    return document


def worker_container() -> dict[str, Any]:
    [container] = the_one(DEPLOYMENT, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def deployment_invocation() -> Invocation:
    container = worker_container()
    found = invocation([*container.get("command", []), *container.get("args", [])])
    assert found is not None, "the Deployment's container does not run pa-worker"
    return found


def create_secret_commands(lines: list[str], name: str) -> list[list[str]]:
    return [
        command
        for line in lines
        if line.lstrip().startswith("kubectl ")  # the comments around them are prose, not shell
        for command in shell_commands(line)
        if command[:4] == ["kubectl", "create", "secret", "generic"] and command[4] == name
    ]


def from_file_keys(command: list[str]) -> set[str]:
    """The Secret keys a `kubectl create secret --from-file=KEY=PATH` command makes."""
    keys: set[str] = set()
    for index, word in enumerate(command):
        source = word.partition("=")[2] if word.startswith("--from-file=") else None
        if word == "--from-file":
            source = command[index + 1]
        if source is not None:
            keys.add(source.partition("=")[0] if "=" in source else Path(source).name)
    return keys


# -- the flags -----------------------------------------------------------------------------------


def test_the_docs_commands_are_found() -> None:
    assert {found.program for found in doc_invocations()} == {"pa", "pa-worker", "pa-worker keygen"}


@pytest.mark.parametrize(
    "source",
    ["docs", "systemd", "k8s"],
)
def test_every_flag_used_is_a_flag_of_its_cli(source: str) -> None:
    invocations = {
        "docs": doc_invocations,
        "systemd": lambda: [unit_invocation()],
        "k8s": lambda: [deployment_invocation()],
    }[source]()
    unknown = {
        f"{found.program} {flag}" for found in invocations for flag in found.flags() - allowed_flags(found.program)
    }
    assert not unknown, f"flags in {source} that no CLI has: {sorted(unknown)}"


def test_a_flag_named_alone_in_the_docs_is_a_flag_of_pa_or_pa_worker() -> None:
    named = {span.split()[0] for span in inline_code(DOCS.read_text()) if span.startswith("--")}
    assert named, "the docs name no flag on its own: is inline code still read?"
    assert named <= allowed_flags("pa") | PA_WORKER_FLAGS, sorted(named - allowed_flags("pa") - PA_WORKER_FLAGS)


def test_every_secure_worker_command_says_where_whom_to_trust_and_who_it_is() -> None:
    # a bare `pa-worker` in the prose names the program; a command has arguments
    workers = [found for found in doc_invocations() if found.program == "pa-worker" and found.args]
    workers += [unit_invocation(), deployment_invocation()]
    secure = [found for found in workers if "--insecure" not in found.flags()]
    assert len(secure) >= 3  # the docs' own, the unit's, the Deployment's
    for found in secure:
        assert found.flags() >= set(WORKER_NEEDS), found.args
        assert found.value("--key").endswith(".key_secret"), "--key is the worker's secret certificate"
        assert found.value("--server-key").endswith("/supervisor.key"), "--server-key is the supervisor's public one"


# -- systemd ---------------------------------------------------------------------------------------


def test_the_systemd_unit_leaves_the_worker_time_to_hand_its_work_back() -> None:
    service = unit_settings()["Service"]
    assert service["KillMode"] == "mixed"  # SIGTERM to pa-worker alone, not at once to its agents
    assert seconds(service["TimeoutStopSec"]) >= HAND_BACK_S
    assert service.get("User") not in (None, "root")


# -- Kubernetes --------------------------------------------------------------------------------------


def test_the_deployment_leaves_the_worker_time_and_selects_its_own_pods() -> None:
    deployment = the_one(DEPLOYMENT, "Deployment")
    template = deployment["spec"]["template"]
    assert template["spec"]["terminationGracePeriodSeconds"] >= HAND_BACK_S
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()


def test_the_deployment_mounts_the_certificates_the_secret_holds() -> None:
    secret = the_one(SECRET, "Secret")
    found = deployment_invocation()
    container = worker_container()
    [volume] = [v for v in the_one(DEPLOYMENT, "Deployment")["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    for flag in ("--key", "--server-key"):
        path = Path(found.value(flag))
        assert path.parent == Path(mount["mountPath"]), f"{flag} {path} is not in the mounted Secret"
        assert path.name in secret["stringData"], f"{flag} {path}: the Secret has no {path.name}"


def test_every_variable_the_worker_arguments_use_is_defined() -> None:
    container = worker_container()
    used = {name for arg in container["args"] for name in re.findall(r"\$\((\w+)\)", arg)}
    assert used, "the Deployment names each pod with --name $(POD_NAME)"
    assert used <= {variable["name"] for variable in container["env"]}  # else Kubernetes passes it verbatim


def test_the_agent_key_comes_from_a_secret_not_the_manifest() -> None:
    [variable] = [v for v in worker_container()["env"] if v["name"] == "ANTHROPIC_API_KEY"]
    assert "value" not in variable
    assert "secretKeyRef" in variable["valueFrom"]


def test_every_create_secret_command_makes_the_secret_the_deployment_mounts() -> None:
    secret = the_one(SECRET, "Secret")
    name = secret["metadata"]["name"]
    comments = [line.lstrip("# ") for line in SECRET.read_text().splitlines() if line.startswith("#")]
    in_secret = create_secret_commands(joined_lines("\n".join(comments)), name)
    doc_lines = [
        line for kind, body in fenced_blocks(DOCS.read_text()) if kind in SHELL_BLOCKS for line in joined_lines(body)
    ]
    in_docs = create_secret_commands(doc_lines, name)
    assert in_secret and in_docs
    for command in in_secret + in_docs:
        assert from_file_keys(command) == set(secret["stringData"]), command


# -- the README ------------------------------------------------------------------------------------


def test_the_examples_readme_names_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    examples = {path.relative_to(EXAMPLES).as_posix() for path in EXAMPLES.rglob("*") if path.is_file()}
    missing = {name for name in examples - {"README.md"} if f"`{name}`" not in readme}
    assert not missing, f"examples/remote/README.md does not say what these are: {sorted(missing)}"
