"""What the developers of a project run to test it, and why: the checks an agent's work is held to.

The strongest evidence wins: the CI workflow's test steps (detect_ci), then the project's make
target, then its build system (autotools, CMake), then each ecosystem's convention: Python's
(detect_python), the Node package manager's test script, cargo test, go test. Detection only
reads: make is asked in question mode and told not to remake its makefiles; nothing is built.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from agentproxy import procs
from agentproxy.child_env import child_environment
from agentproxy.detect_ci import workflow_checks
from agentproxy.detect_python import python_check
from agentproxy.messages import DetectedCheck
from agentproxy.project_files import read_json, read_text, toml_value, walk_files
from agentproxy.runner_commands import MAKE_TARGETS, MAKEFILES

MAKE_TIMEOUT_S = 10.0
CMAKE_CHECK = "cmake -S . -B build && cmake --build build && ctest --test-dir build --output-on-failure"
_CMAKE_TESTS = re.compile(
    r"\b(enable_testing|add_test|include\s*\(\s*CTest|gtest_discover_tests|catch_discover_tests)\b"
)
_MAKE_INCLUDE = re.compile(r"^\s*-?s?include\s+(.+)$", re.MULTILINE)
_NPM_PLACEHOLDER = "no test specified"


def detect_checks(project: Path) -> list[DetectedCheck]:
    """The commands a maintainer of the project runs before calling a change done, each with its reason.

    Runs in the caller's thread; make is the only process started (bounded by MAKE_TIMEOUT_S).
    Unreadable or malformed files count as absent: detection never raises for the project's state.
    """
    for source in (workflow_checks, _from_makefiles, _from_build_system):
        found = source(project)
        if found:
            return found
    ecosystems = (python_check, _node_check, _rust_check, _go_check)
    return [check for check in (detector(project) for detector in ecosystems) if check is not None]


# --- make, autotools, CMake --------------------------------------------------------------------


def _from_makefiles(project: Path) -> list[DetectedCheck]:
    present = [name for name in MAKEFILES if (project / name).is_file()]
    for name in present:
        targets, asked_make = _make_targets(project, name, present)
        target = next((target for target in MAKE_TARGETS if target in targets), None)
        if target is None:
            continue
        # make reads the first of MAKEFILES that exists by itself; another one must be named.
        command = f"make {target}" if name == present[0] else f"make -f {name} {target}"
        reason = f"{name} target `{target}`"
        missing = MAKE_TARGETS[: MAKE_TARGETS.index(target)]
        if missing:
            reason += f" (no {' or '.join(f'`{other}`' for other in missing)} target)"
        if not asked_make:
            reason += "; make could not list its targets (missing, timed out or failed), so its rules were read as text"
        return [DetectedCheck(command=command, reason=reason)]
    return []


def _make_targets(project: Path, makefile: str, makefiles: list[str]) -> tuple[set[str], bool]:
    """The targets with a recipe or prerequisites, and whether make itself said so (else a careful read)."""
    if shutil.which("make"):
        text = read_text(project / makefile)
        included = [word for line in _MAKE_INCLUDE.findall(text) for word in line.split() if "$" not in word]
        # -o: make remakes out-of-date makefiles even in question mode; -q runs no recipe.
        keep = [argument for name in [*makefiles, *included] for argument in ("-o", name)]
        env = {name: value for name, value in child_environment().items() if not name.startswith(("MAKE", "MFLAGS"))}
        try:
            _, output, timed_out = procs.run_bounded(
                ["make", "-pRrq", "-f", makefile, *keep, ":"], cwd=project, timeout_s=MAKE_TIMEOUT_S, env=env
            )
        except OSError:
            output, timed_out = b"", True
        targets = None if timed_out else _database_targets(output.decode("utf-8", errors="replace"))
        if targets is not None:
            return targets, True
    return _rule_targets(read_text(project / makefile)), False


def _database_targets(database: str) -> set[str] | None:
    """Targets with prerequisites or a recipe in the `# Files` section of make's printed database."""
    _, found, files = database.partition("\n# Files\n")
    if not found:
        return None  # make stopped before printing it: a syntax error, say
    targets = set()
    for entry in files.split("\n# files hash-table stats", 1)[0].split("\n\n"):
        lines = entry.splitlines()
        if "# Not a target:" in lines:
            continue
        has_recipe = any(line.startswith("#  recipe to execute") for line in lines)
        for line in lines:
            rule = _rule(line)
            if rule and (rule[1] or has_recipe):
                targets.update(rule[0])
    return targets


def _rule_targets(makefile: str) -> set[str]:
    """A makefile's targets read as text: rule lines followed by a recipe or naming prerequisites."""
    lines = makefile.splitlines()
    targets = set()
    for number, line in enumerate(lines):
        rule = _rule(line.split("#", 1)[0])
        followed_by_recipe = number + 1 < len(lines) and lines[number + 1].startswith("\t")
        if rule and not rule[0][0].startswith(".") and (rule[1] or followed_by_recipe):
            targets.update(rule[0])
    return targets


def _rule(line: str) -> tuple[list[str], str] | None:
    """(targets, prerequisites and inline recipe) of a rule line; None for variables and everything else."""
    match = re.match(r"([^\s#=:][^#=:]*?)\s*::?(?![=:])(.*)$", line)
    # `test: VAR = x` sets a target-specific variable; `test := x` never matches.
    if match is None or "=" in match.group(2):
        return None
    return match.group(1).split(), match.group(2).strip()


def _from_build_system(project: Path) -> list[DetectedCheck]:
    """autotools' `make check` or CMake's ctest, for a tree whose Makefile is generated."""
    declared = [name for name in ("configure.ac", "configure.in") if (project / name).is_file()]
    if (project / "Makefile.am").is_file() and (declared or (project / "configure").is_file()):
        if (project / "configure").is_file():
            configure, made_by = "./configure", "the configure script"
        elif (project / "autogen.sh").is_file():
            configure, made_by = "./autogen.sh && ./configure", "autogen.sh, then configure"
        else:
            configure, made_by = "autoreconf -fi && ./configure", "autoreconf, then configure"
        evidence = " and ".join([*declared[:1], "Makefile.am"])
        reason = f"autotools: {evidence}; the Makefile is generated by {made_by}, and `make check` runs the tests"
        return [DetectedCheck(command=f"{configure} && make check", reason=reason)]
    for path in walk_files(project, lambda name: name == "CMakeLists.txt", max_depth=2):
        found = _CMAKE_TESTS.search(read_text(path))
        if found:
            where = path.relative_to(project).as_posix()
            call = "include(CTest)" if found.group(1).startswith("include") else f"{found.group(1)}()"
            reason = f"CMake: {where} calls {call}; ctest runs the tests of a build in build/"
            return [DetectedCheck(command=CMAKE_CHECK, reason=reason)]
    return []


# --- Node, Rust, Go ------------------------------------------------------------------------------


def _node_check(project: Path) -> DetectedCheck | None:
    package = read_json(project / "package.json")
    if package is None:
        return None
    manager, why_manager = _package_manager(project, package)
    script = _test_script(package)
    run = "bun run test" if manager == "bun" else f"{manager} test"
    if script:
        return DetectedCheck(command=run, reason=f"package.json's test script (`{script}`); {why_manager}")
    members = _workspace_members(project, package, manager)
    tested = [member for member in members if _test_script(read_json(member / "package.json") or {})]
    if not tested:
        return None
    names = ", ".join(member.relative_to(project).as_posix() for member in tested[:3])
    reason = f"workspace packages ({names}) have test scripts, the root package.json none; {why_manager}"
    if manager == "pnpm":
        return DetectedCheck(command="pnpm -r test", reason=reason)
    if manager == "npm":
        return DetectedCheck(command="npm test --workspaces --if-present", reason=reason)
    return None


def _package_manager(project: Path, package: dict[str, Any]) -> tuple[str, str]:
    declared = str(package.get("packageManager") or "").split("@", 1)[0]
    if declared in ("npm", "pnpm", "yarn", "bun"):
        return declared, f"package.json's packageManager is {declared}"
    lockfiles = (
        ("pnpm-lock.yaml", "pnpm"),
        ("yarn.lock", "yarn"),
        ("bun.lock", "bun"),
        ("bun.lockb", "bun"),
        ("package-lock.json", "npm"),
    )
    for lockfile, manager in lockfiles:
        if (project / lockfile).is_file():
            return manager, f"{lockfile}: the project uses {manager}"
    return "npm", "no lockfile names another package manager than npm"


def _test_script(package: dict[str, Any]) -> str:
    scripts = package.get("scripts")
    script = scripts.get("test") if isinstance(scripts, dict) else None
    # npm init's placeholder fails on purpose; it is not a test suite.
    return script if isinstance(script, str) and script.strip() and _NPM_PLACEHOLDER not in script else ""


def _workspace_members(project: Path, package: dict[str, Any], manager: str) -> list[Path]:
    patterns: Any = package.get("workspaces")
    if isinstance(patterns, dict):
        patterns = patterns.get("packages")
    if manager == "pnpm" and (project / "pnpm-workspace.yaml").is_file():
        import yaml  # lazy: only pnpm workspaces pay for it

        try:
            workspace = yaml.safe_load(read_text(project / "pnpm-workspace.yaml"))
        except yaml.YAMLError:
            workspace = None
        patterns = workspace.get("packages") if isinstance(workspace, dict) else None
    members = []
    for pattern in patterns if isinstance(patterns, list) else []:
        if isinstance(pattern, str) and not pattern.startswith(("!", "/")):
            # `dir/**` as two levels: globbing ** would walk every node_modules below.
            base = pattern.rstrip("/").removesuffix("/**")
            globs = [f"{base}/*/package.json", f"{base}/*/*/package.json"] if base != pattern.rstrip("/") else []
            for glob in globs or [f"{base}/package.json"]:
                members += sorted(path.parent for path in project.glob(glob))
    return [member for member in members if "node_modules" not in member.parts]


def _rust_check(project: Path) -> DetectedCheck | None:
    manifest = project / "Cargo.toml"
    if not manifest.is_file():
        return None
    if toml_value(manifest, "workspace") is not None:
        return DetectedCheck(
            command="cargo test --workspace", reason="Cargo.toml declares a [workspace]: every member's tests"
        )
    return DetectedCheck(command="cargo test", reason="Cargo.toml: a Rust crate")


def _go_check(project: Path) -> DetectedCheck | None:
    if not (project / "go.mod").is_file():
        return None
    return DetectedCheck(command="go test ./...", reason="go.mod: a Go module; ./... is every package in it")
