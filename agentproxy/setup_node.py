"""A Node project's node_modules from its own package manager, and the build its CI runs before the tests.

The manager comes from package.json's `packageManager`, else from the lockfile; pnpm and yarn run
through corepack, which fetches the version the project pins. An install newer than the lockfile
and package.json is left alone.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

from agentproxy.project_files import read_json, read_text
from agentproxy.setup_plan import SetupPlan, SetupStep

_LOCKFILES = (
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
    ("npm-shrinkwrap.json", "npm"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
)
# What each manager leaves behind after an install: their mtimes say when it last ran.
_INSTALL_MARKERS = (
    "node_modules",
    "node_modules/.package-lock.json",
    "node_modules/.modules.yaml",
    "node_modules/.yarn-integrity",
    "node_modules/.yarn-state.yml",
    ".yarn/install-state.gz",
    ".pnp.cjs",
)
_BUILD = re.compile(
    r"\b(?:(?:npm|bun)\s+run\s+build|(?:pnpm|yarn)\s+(?:(?:-r|--recursive|-w|--workspace-root|--filter\s+\S+)\s+)*"
    r"(?:run\s+)?build)(?![\w:.-])"
)
_TEST = re.compile(r"\b(?:(?:npm|pnpm|yarn|bun)\s+(?:run\s+)?test|npm\s+t|npx\s+(?:jest|vitest|mocha))(?![\w:.-])")
_WORKSPACE_FLAGS = ("-r", "--recursive", "--filter")
_WORKFLOW_GLOBS = (".github/workflows/*.yml", ".github/workflows/*.yaml")


def is_node_project(project: Path) -> bool:
    return (project / "package.json").is_file()


def plan_node(project: Path, shims_dir: Path, fresh: bool = False) -> SetupPlan:
    """fresh: install again even where node_modules looks up to date (a repair).

    shims_dir: where corepack puts a `pnpm`/`yarn` command when only corepack has one, so that the
    checks (`pnpm -r test`) find it on PATH.
    """
    root = project.resolve()
    if shutil.which("node") is None:
        problem = "package.json but node is not installed"
        return SetupPlan(problems=[problem], reasons=[f"node: {problem}"])
    package = read_json(root / "package.json") or {}
    manager, lockfile = _package_manager(root, package)
    via_corepack = manager in ("pnpm", "yarn") and shutil.which("corepack") is not None
    launcher = "corepack" if via_corepack else manager
    if shutil.which(launcher) is None:
        problem = f"{lockfile.name if lockfile else 'package.json'} asks for {manager} but it is not installed"
        return SetupPlan(problems=[problem], reasons=[f"node: {problem}"])
    plan = SetupPlan(bin_dirs=[root / "node_modules" / ".bin"])
    if via_corepack:
        plan.env["COREPACK_ENABLE_DOWNLOAD_PROMPT"] = "0"  # no one answers the prompt
    if via_corepack and shutil.which(manager) is None:
        plan.bin_dirs.append(shims_dir)
        if not (shims_dir / manager).exists():
            enable = ["corepack", "enable", "--install-directory", str(shims_dir), manager]
            plan.steps.append(SetupStep(enable, root, f"a `{manager}` command for the checks, from corepack"))
    prefix = ["corepack", manager] if via_corepack else [manager]
    source = lockfile.name if lockfile else "package.json"
    if not fresh and _installed_after(root, [root / "package.json", *([lockfile] if lockfile else [])]):
        plan.reasons.append(f"node: node_modules newer than {source}: up to date")
    else:
        install = [*prefix, *_install_arguments(manager, root, package, lockfile)]
        plan.steps.append(SetupStep(install, root, f"{source}: install with {manager}"))
        plan.reasons.append(f"node: {shlex.join(install)} ({source})")
    build = _ci_build(root, package)
    if build is not None:
        command, workflow = build
        argv = shlex.split(command)
        if via_corepack and argv[0] in ("pnpm", "yarn"):
            argv = ["corepack", *argv]
        plan.steps.append(SetupStep(argv, root, f"{workflow} runs `{command}` before the tests"))
        plan.reasons.append(f"node: {shlex.join(argv)} as {workflow} does before its tests")
    return plan


def _package_manager(root: Path, package: dict[str, Any]) -> tuple[str, Path | None]:
    """(manager, its lockfile if any): `packageManager` first, then whichever lockfile exists."""
    declared = str(package.get("packageManager") or "").split("@")[0]
    present = [(root / name, manager) for name, manager in _LOCKFILES if (root / name).is_file()]
    if declared in ("npm", "pnpm", "yarn", "bun"):
        return declared, next((path for path, manager in present if manager == declared), None)
    if present:
        path, manager = present[0]
        return manager, path
    return "npm", None


def _install_arguments(manager: str, root: Path, package: dict[str, Any], lockfile: Path | None) -> list[str]:
    """Install exactly the lockfile when there is one; without one, install without writing one into the tree."""
    if manager == "npm":
        return (
            ["ci", "--no-audit", "--no-fund"]
            if lockfile
            else ["install", "--no-audit", "--no-fund", "--no-package-lock"]
        )
    if manager == "pnpm":
        return ["install", "--frozen-lockfile"] if lockfile else ["install"]
    if manager == "yarn":
        if lockfile is None:
            return ["install"]
        return ["install", "--immutable"] if _yarn_berry(root, package, lockfile) else ["install", "--frozen-lockfile"]
    return ["install", "--frozen-lockfile"] if lockfile else ["install"]


def _yarn_berry(root: Path, package: dict[str, Any], lockfile: Path) -> bool:
    """Yarn 2+ ("berry") rather than classic 1.x: from packageManager, .yarnrc.yml, or the lockfile's format."""
    declared = str(package.get("packageManager") or "")
    if declared.startswith("yarn@"):
        return not declared.startswith("yarn@1.")
    return (root / ".yarnrc.yml").is_file() or "__metadata:" in read_text(lockfile)


def _installed_after(root: Path, inputs: list[Path]) -> bool:
    markers = [root / name for name in _INSTALL_MARKERS if (root / name).exists()]
    if not markers:
        return False
    installed = max(path.stat().st_mtime for path in markers)
    return all(installed >= path.stat().st_mtime for path in inputs if path.exists())


def _ci_build(root: Path, package: dict[str, Any]) -> tuple[str, str] | None:
    """(the build command, its workflow file) when a CI job builds before any test command runs."""
    has_build_script = "build" in (package.get("scripts") or {})
    for workflow in sorted(path for pattern in _WORKFLOW_GLOBS for path in root.glob(pattern)):
        for lines in _job_run_lines(workflow):
            for line in lines:
                if _TEST.search(line):
                    break
                match = _BUILD.search(line)
                if match and (has_build_script or any(flag in match.group(0).split() for flag in _WORKSPACE_FLAGS)):
                    return match.group(0), f".github/workflows/{workflow.name}"
    return None


def _job_run_lines(workflow: Path) -> list[list[str]]:
    """Each job's `run:` lines, in order; nothing for a workflow that does not parse."""
    import yaml  # lazy: only projects with a CI workflow need it

    try:
        data = yaml.safe_load(read_text(workflow))
    except yaml.YAMLError:
        return []
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, dict):
        return []
    result = []
    for job in jobs.values():
        steps = job.get("steps") if isinstance(job, dict) else None
        runs = [step["run"] for step in steps or [] if isinstance(step, dict) and isinstance(step.get("run"), str)]
        result.append([line for run in runs for line in run.splitlines()])
    return result
