"""Why a check failed: its environment could not run it, or the code under test is wrong.

An ``environment`` failure is one no edit of the code under test explains: the runner or a
third-party package or test plugin is missing, the interpreter is one the project refuses, the
network is down, pytest was given options it does not know or found no tests. Each comes with its
cause (the evidence, quoted) and a one-line fix. Everything else is ``code``.

Telling a missing third-party module from the project's own needs the project directory: a module
that lives in the tree, or that nothing declares or installs (most likely the one the task is to
create), is the code's business.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

import msgspec

from agentproxy.messages import CheckResult

EVIDENCE_CHARS = 200
FailureKind = Literal["environment", "code"]


class Classification(msgspec.Struct, frozen=True):
    kind: FailureKind
    cause: str = ""  # one line, quoting the evidence
    fix: str = ""  # one line: what to run or install
    transient: bool = False  # the network: nothing in the tree caused it, and a later run may pass


CODE = Classification(kind="code")


def classify(result: CheckResult, project: Path) -> Classification:
    """The kind of a failed check's failure (a passed or timed-out check is the code's business)."""
    if result.passed or result.timed_out:
        return CODE
    lines = [line.strip() for line in result.output_tail.splitlines() if line.strip()]
    rules: list[Callable[[], Classification | None]] = [
        lambda: _interpreter_refused(lines),
        lambda: _network(lines),
        lambda: _runner_missing(result.exit_code, lines, project),
        lambda: _python_module_missing(lines, project),
        lambda: _pytest_plugin_missing(lines, project),
        lambda: _node_module_missing(lines, project),
        lambda: _pytest_could_not_start(result.exit_code, lines),
        lambda: _installed_copy_tested(lines, project),
    ]
    for rule in rules:
        if found := rule():
            return found
    return CODE


def _environment(cause: str, evidence: str, fix: str, transient: bool = False) -> Classification:
    quoted = evidence if len(evidence) <= EVIDENCE_CHARS else evidence[: EVIDENCE_CHARS - 1] + "…"
    return Classification(kind="environment", cause=f"{cause}: {quoted}", fix=fix, transient=transient)


def _first(pattern: re.Pattern[str], lines: Iterable[str]) -> tuple[str, re.Match[str]] | None:
    for line in lines:
        if match := pattern.search(line):
            return line, match
    return None


# --- the interpreter -------------------------------------------------------------------------

_INTERPRETER_REFUSED = re.compile(
    r"requires a different Python|Requires-Python|No interpreter found for Python"
    r"|incompatible with the project's Python requirement|is not supported by the project"
    r"|InterpreterNotFound|Python interpreter \S+ not found",
    re.IGNORECASE,
)
_SITE_PACKAGES_FILE = re.compile(r'File "[^"]*/(?:site|dist)-packages/[^"]+", line \d+')


def _interpreter_refused(lines: list[str]) -> Classification | None:
    fix = "install a Python the project accepts (its requires-python or .python-version) and use it"
    if found := _first(_INTERPRETER_REFUSED, lines):
        return _environment("the project refuses this Python", found[0], fix)
    # A dependency written for a newer Python fails to parse; the project's own SyntaxError is code.
    for index, line in enumerate(lines):
        traceback = lines[max(0, index - 4) : index]
        if line.startswith("SyntaxError") and any(_SITE_PACKAGES_FILE.search(seen) for seen in traceback):
            return _environment("an installed dependency needs a newer Python", line, fix)
    return None


# --- the network -----------------------------------------------------------------------------

_NETWORK = re.compile(
    r"Could not resolve host|getaddrinfo|\bENOTFOUND\b|\bEAI_AGAIN\b|Temporary failure in name resolution"
    r"|Name or service not known|nodename nor servname|Failed to establish a new connection"
    r"|[Nn]etwork is unreachable|dial tcp: lookup|spurious network error|failed to download"
    r"|Unable to update registry|failed to get `[^`]+` as a dependency|ERR_PNPM_FETCH|npm ERR! network"
    r"|No matching distribution found"
)


def _network(lines: list[str]) -> Classification | None:
    if found := _first(_NETWORK, lines):
        fix = "check the network and the package registry (proxy, mirror, offline mode), then run the checks again"
        return _environment("a download or name lookup failed", found[0], fix, transient=True)
    return None


# --- the runner ------------------------------------------------------------------------------

_NOT_FOUND = re.compile(
    r"^(?:/(?:usr/)?bin/)?(?:ba|da|z)?sh: (?:line )?\d*:? ?(?:exec: )?(?P<name>[^:]+): (?:command )?not found$"
    r"|^(?:/(?:usr/)?bin/)?(?:ba|z)?sh: (?:line \d+: )?(?P<name2>[^:]+): No such file or directory$"
    r"|^zsh: command not found: (?P<name3>\S+)$"
    r"|^make(?:\[\d+\])?: (?P<name4>[^:*]+): (?:Command not found|No such file or directory)$"
)
_CANNOT_EXECUTE = re.compile(r"^(?:\S*sh: )?(?:\d+: )?(?P<name>[^:]+): Permission denied$")
_SYSTEM_TOOLS = {"go", "cargo", "rustc", "node", "npm", "npx", "pnpm", "yarn", "make", "tox", "nox", "uv", "poetry"}


def _runner_missing(exit_code: int, lines: list[str], project: Path) -> Classification | None:
    if found := _first(_NOT_FOUND, lines):
        name = next(group for group in found[1].groups() if group)
        return _environment(f"{name} is not installed or not on PATH", found[0], _install_command(name, project))
    if exit_code == 126 and (found := _first(_CANNOT_EXECUTE, lines)):
        name = found[1].group("name")
        return _environment(f"{name} cannot be executed", found[0], f"make it executable: chmod +x {name}")
    if exit_code in (126, 127):
        evidence = lines[-1] if lines else f"exit {exit_code}"
        return _environment(f"the shell could not run a command (exit {exit_code})", evidence, "install the command")
    return None


def _install_command(name: str, project: Path) -> str:
    base = Path(name).name
    if "/" in name and base in ("pytest", "python", "python3", "py.test"):
        return f"create the project's virtualenv ({Path(name).parent.parent}) with its test dependencies"
    if base in ("python", "python3", "pytest", "py.test"):
        return "give the project its own environment with its test dependencies: " + _python_install_fix(project)
    if (project / "package.json").is_file() and base not in _SYSTEM_TOOLS:
        return _node_install_fix(project)
    return f"install {base} or put it on PATH"


# --- Python modules and pytest plugins -------------------------------------------------------

# The exceptions, and `python -m X` refusing to start ("/env/bin/python3: No module named pytest").
_MODULE_MISSING = re.compile(
    r"(?:ModuleNotFoundError|ImportError|\bpython[\d.]*): No module named '?(?P<module>[\w.]+)'?"
)
_NAME_MISSING = re.compile(
    r"ImportError: cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'(?: \((?P<path>[^)]*)\))?"
)
_PLUGIN_MISSING = re.compile(r'Error importing plugin "(?P<module>[\w.]+)"')
# Modules whose distribution is named otherwise; the rest are found installed or by their own name.
_DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "PIL": "Pillow",
    "sklearn": "scikit-learn",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "cv2": "opencv-python",
    "attr": "attrs",
    "dotenv": "python-dotenv",
    "jwt": "PyJWT",
    "xdist": "pytest-xdist",
}


def _python_module_missing(lines: list[str], project: Path) -> Classification | None:
    own = _own_modules(project)
    for line in lines:
        if match := _PLUGIN_MISSING.search(line):
            module = match.group("module")
            if module.split(".")[0] not in own.all:
                dist = _distribution(module)
                return _environment(f"the pytest plugin {dist} is not installed", line, _python_fix(project, dist))
        elif match := _MODULE_MISSING.search(line):
            if found := _missing_module(match.group("module"), line, own, project):
                return found
        elif (match := _NAME_MISSING.search(line)) and (found := _missing_name(match, line, own, project)):
            return found
    return None


def _missing_module(module: str, line: str, own: _OwnModules, project: Path) -> Classification | None:
    top = module.split(".")[0]
    if top in own.src_only and module == top:
        fix = "install the project editable in its environment: pip install -e ."
        return _environment(f"the project's {top} (under src/) is not installed", line, fix)
    if top in own.all:
        return None  # the project's own module: the code's business
    if top in sys.stdlib_module_names:
        return _environment(f"this Python lacks the standard module {top}", line, "use a Python the project accepts")
    dist = _distribution(top)
    if _declared(project, dist) or top in _installed_modules():
        return _environment(f"{dist} is not installed in the project's environment", line, _python_fix(project, dist))
    return None  # nothing declares or provides it: most likely the module the task is to create


def _missing_name(match: re.Match[str], line: str, own: _OwnModules, project: Path) -> Classification | None:
    top = match.group("module").split(".")[0]
    path = match.group("path") or ""
    if top in own.all:
        if re.search(r"[/\\](?:site|dist)-packages[/\\]", path):
            fix = "install the project editable in its environment: pip install -e ."
            return _environment(f"an installed copy of {top} is imported instead of the tree's", line, fix)
        return None
    dist = _distribution(top)
    if _declared(project, dist) or top in _installed_modules():
        cause = f"the installed {dist} is not the version the project needs"
        return _environment(cause, line, _python_fix(project, dist))
    return None


_UNRECOGNIZED = re.compile(r"error: unrecognized arguments: (?P<options>.+)$")
_FIXTURE_MISSING = re.compile(r"fixture '(?P<name>\w+)' not found")
_MARKER_MISSING = re.compile(r"'(?P<name>\w+)' not found in `markers` configuration option")
_ASYNC_UNSUPPORTED = re.compile(r"async def functions are not natively supported")
_PLUGIN_OPTIONS = {
    "--timeout": "pytest-timeout",
    "--benchmark": "pytest-benchmark",
    "--cov": "pytest-cov",
    "--no-cov": "pytest-cov",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist",
    "--reruns": "pytest-rerunfailures",
    "--randomly": "pytest-randomly",
    "--asyncio-mode": "pytest-asyncio",
    "--html": "pytest-html",
    "--hypothesis": "hypothesis",
    "--snapshot-update": "syrupy",
    "--ds": "pytest-django",
    "--mypy": "pytest-mypy",
    "--forked": "pytest-forked",
    "--record-mode": "pytest-recording",
}
_PLUGIN_FIXTURES = {
    "mocker": "pytest-mock",
    "benchmark": "pytest-benchmark",
    "httpx_mock": "pytest-httpx",
    "requests_mock": "requests-mock",
    "respx_mock": "respx",
    "freezer": "pytest-freezer",
    "time_machine": "time-machine",
    "snapshot": "syrupy",
    "httpserver": "pytest-httpserver",
    "event_loop": "pytest-asyncio",
    "qtbot": "pytest-qt",
    "datadir": "pytest-datadir",
    "faker": "Faker",
    "aiohttp_client": "pytest-aiohttp",
    "django_db_setup": "pytest-django",
    "db": "pytest-django",
    "rf": "pytest-django",
    "settings": "pytest-django",
    "loop": "pytest-aiohttp",
}
_PLUGIN_MARKERS = {
    "asyncio": "pytest-asyncio",
    "timeout": "pytest-timeout",
    "benchmark": "pytest-benchmark",
    "django_db": "pytest-django",
    "trio": "pytest-trio",
    "flaky": "pytest-rerunfailures",
    "vcr": "pytest-recording",
    "order": "pytest-order",
    "dependency": "pytest-dependency",
    "freeze_time": "pytest-freezer",
    "httpx_mock": "pytest-httpx",
}


def _pytest_plugin_missing(lines: list[str], project: Path) -> Classification | None:
    if found := _first(_UNRECOGNIZED, lines):
        options = found[1].group("options").split()
        providers = [
            plugin for key, plugin in _PLUGIN_OPTIONS.items() if any(_is_option(given, key) for given in options)
        ]
        if providers:
            plugin = providers[0]
            return _environment(f"the pytest plugin {plugin} is not installed", found[0], _python_fix(project, plugin))
        fix = "install the pytest plugin that provides these options, or drop them from the command or config"
        return _environment("pytest does not know an option it was given", found[0], fix)
    for pattern, plugins in ((_FIXTURE_MISSING, _PLUGIN_FIXTURES), (_MARKER_MISSING, _PLUGIN_MARKERS)):
        if (found := _first(pattern, lines)) and (plugin := plugins.get(found[1].group("name"), "")):
            return _environment(f"the pytest plugin {plugin} is not installed", found[0], _python_fix(project, plugin))
    if found := _first(_ASYNC_UNSUPPORTED, lines):
        return _environment("no pytest plugin runs async tests", found[0], _python_fix(project, "pytest-asyncio"))
    return None


def _is_option(given: str, known: str) -> bool:
    """--benchmark-only and --cov=src are the plugins' --benchmark and --cov; -n4 is -n."""
    if known.startswith("--"):
        return given == known or given.startswith((known + "-", known + "="))
    return given == known or (given.startswith(known) and given[len(known) :].isdigit())


# --- pytest could not start or found nothing -------------------------------------------------

_PYTEST_USAGE = re.compile(r"^ERROR: usage:|^ERROR: .*(?:unknown|invalid|unrecognized)|^INTERNALERROR>")
_PYTEST_PATH_MISSING = re.compile(r"^ERROR: (?:file or directory not found|not found): ")
_NO_TESTS = re.compile(r"^=*\s*no tests ran\b")
_DESELECTED = re.compile(r"\b\d+ deselected\b")


def _pytest_could_not_start(exit_code: int, lines: list[str]) -> Classification | None:
    # A path or a selection the tree lacks is the code's business: the check names tests to exist.
    if _first(_PYTEST_PATH_MISSING, lines) or _first(_DESELECTED, lines):
        return None
    if found := _first(_PYTEST_USAGE, lines):
        return _environment("pytest could not start", found[0], "fix the pytest options in the command or its config")
    if found := _first(_NO_TESTS, lines):
        fix = "point the command at the project's tests, or use the runner they are written for"
        return _environment("pytest collected no tests", found[0], fix)
    return None


# --- the installed copy of the project under test --------------------------------------------


def _installed_copy_tested(lines: list[str], project: Path) -> Classification | None:
    own = _own_modules(project).all
    for line in lines:
        for match in re.finditer(r"[/\\](?:site|dist)-packages[/\\](\w+)[/\\]", line):
            if match.group(1) in own:
                fix = "install the project editable in its environment: pip install -e ."
                return _environment(f"the tests ran an installed copy of {match.group(1)}, not the tree's", line, fix)
    return None


# --- Node ------------------------------------------------------------------------------------

_NODE_MISSING = re.compile(r"Cannot find (?:module|package) '(?P<name>[^']+)'")


def _node_module_missing(lines: list[str], project: Path) -> Classification | None:
    for line in lines:
        match = _NODE_MISSING.search(line)
        if match and not match.group("name").startswith((".", "/", "node:")):
            state = " (node_modules is missing)" if not (project / "node_modules").is_dir() else ""
            return _environment(f"a dependency is not installed{state}", line, _node_install_fix(project))
    return None


def _node_install_fix(project: Path) -> str:
    for lockfile, command in (
        ("pnpm-lock.yaml", "pnpm install --frozen-lockfile"),
        ("yarn.lock", "yarn install --frozen-lockfile"),
        ("bun.lockb", "bun install --frozen-lockfile"),
        ("package-lock.json", "npm ci"),
    ):
        if (project / lockfile).is_file():
            return f"install the project's dependencies: {command}"
    return "install the project's dependencies: npm install"


# --- what the project is made of and declares ------------------------------------------------

_SKIPPED_DIRS = {"node_modules", "venv", "env", "build", "dist", "site-packages", "__pycache__"}
_PROJECT_NAME = re.compile(r"""^name\s*=\s*["']?([\w.-]+)""", re.MULTILINE)
_DECLARING_FILES = (
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "noxfile.py",
    "Pipfile",
    "environment.yml",
    "requirements*.txt",
    "requirements/*.txt",
    ".github/workflows/*.yml",
    ".github/workflows/*.yaml",
)
_TEST_EXTRA = re.compile(r"^(test|tests|testing|dev)\s*=\s*\[", re.MULTILINE)


class _OwnModules(msgspec.Struct, frozen=True):
    all: frozenset[str]
    src_only: frozenset[str]  # importable only once the project is installed (a src layout)


def _own_modules(project: Path) -> _OwnModules:
    """The importable names the project's tree defines: its top-level and src/ packages and modules."""
    top = _module_names(project) | _module_names(project / "tests") | _module_names(project / "test")
    src = _module_names(project / "src")
    names = set(top | src)
    for config in ("pyproject.toml", "setup.cfg"):
        if match := _PROJECT_NAME.search(_read(project / config)):
            names.add(match.group(1).replace("-", "_").replace(".", "_"))
    return _OwnModules(all=frozenset(names), src_only=frozenset(src - top))


def _module_names(directory: Path) -> set[str]:
    try:
        entries = list(directory.iterdir())
    except OSError:
        return set()
    names = set()
    for entry in entries:
        name = entry.stem if entry.suffix == ".py" else entry.name
        is_module = entry.suffix == ".py" or entry.is_dir()
        if is_module and name.isidentifier() and name not in _SKIPPED_DIRS:
            names.add(name)
    return names


def _declared(project: Path, dist: str) -> str:
    """The project file that names the distribution as a dependency, or ""."""
    pattern = re.compile(r"(?<![\w.-])" + r"[-_.]".join(map(re.escape, re.split(r"[-_.]", dist))) + r"(?![\w-])", re.I)
    for glob in _DECLARING_FILES:
        for path in sorted(project.glob(glob))[:20]:
            if pattern.search(_read(path)):
                return path.relative_to(project).as_posix()
    return ""


def _python_fix(project: Path, dist: str) -> str:
    declared = _declared(project, dist)
    if declared.startswith("requirements"):
        return f"install the project's requirements: pip install -r {declared}"
    if declared == "pyproject.toml" and (extra := _TEST_EXTRA.search(_read(project / declared))):
        return f"install the project with its {extra.group(1)} extra: pip install -e '.[{extra.group(1)}]'"
    return f"install it in the project's environment: pip install {dist}"


def _python_install_fix(project: Path) -> str:
    extra = _TEST_EXTRA.search(_read(project / "pyproject.toml"))
    return f"pip install -e '.[{extra.group(1)}]'" if extra else "pip install -e . pytest"


def _distribution(module: str) -> str:
    top = module.split(".")[0]
    installed = _installed_modules().get(top)
    return _DISTRIBUTIONS.get(top) or (installed[0] if installed else top.replace("_", "-"))


@functools.lru_cache(maxsize=1)
def _installed_modules() -> Mapping[str, list[str]]:
    """Modules that real distributions provide, as installed here: proof that a name is third-party."""
    return importlib.metadata.packages_distributions()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:200_000]
    except OSError:
        return ""
