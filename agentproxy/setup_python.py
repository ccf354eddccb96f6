"""A Python project's own environment, so its checks never run on agentproxy's interpreter.

In order: the tree's `.venv`; `uv sync` for a uv.lock; `poetry install` for a poetry.lock; else a
venv with the tree installed editable plus its test/dev extras, so tests import the tree's code
rather than a copy in site-packages. Every environment agentproxy makes lives under envs_dir,
keyed by the project's absolute path and interpreter (each worktree gets its own), with a stamp
of the dependency files: an unchanged project is up to date without reinstalling.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from agentproxy.project_files import read_text
from agentproxy.python_interpreters import Interpreter, choose_interpreter
from agentproxy.python_project import PythonProject, dependency_files, read_project
from agentproxy.setup_plan import SetupPlan, SetupStep, fingerprint

STAMP_FILE = "agentproxy-setup.json"
_PIP = ("-m", "pip", "install", "--disable-pip-version-check", "--no-input")


def plan_python(project: Path, envs_dir: Path, fresh: bool = False) -> SetupPlan:
    """fresh: install again even where the stamp says the environment is up to date (a repair)."""
    root, envs_dir = project.resolve(), envs_dir.resolve()
    in_tree = root / ".venv"
    if (in_tree / "bin" / "python").exists():
        return _use_env(in_tree, reason=f"python: the tree's own environment {in_tree}")
    info = read_project(root)
    if (root / "uv.lock").is_file():
        return _plan_uv(info, envs_dir, fresh)
    interpreter, problem = choose_interpreter(info.python)
    if interpreter is None:
        return SetupPlan(problems=[problem], reasons=[f"python: cannot make an environment: {problem}"])
    if (root / "poetry.lock").is_file():
        return _plan_poetry(info, envs_dir, interpreter, fresh)
    return _plan_pip(info, envs_dir, interpreter, fresh)


def _plan_uv(info: PythonProject, envs_dir: Path, fresh: bool) -> SetupPlan:
    if shutil.which("uv") is None:
        problem = "uv.lock but uv is not installed (https://docs.astral.sh/uv/getting-started/installation/)"
        return SetupPlan(problems=[problem], reasons=[f"python: {problem}"])
    interpreter, _ = choose_interpreter(info.python)
    env_dir = _env_dir(info.root, envs_dir, f"uv:{interpreter.path if interpreter else ''}")
    # --frozen installs what uv.lock says without rewriting it in the user's tree.
    command = ["uv", "sync", "--all-extras", "--all-groups", "--frozen"]
    if interpreter is not None:
        command += ["--python", str(interpreter.path)]
    plan = _managed(
        info,
        env_dir,
        [SetupStep(command, info.root, "uv.lock: the locked dependencies, every extra and group")],
        kind="uv sync",
        fresh=fresh,
    )
    plan.env["UV_PROJECT_ENVIRONMENT"] = str(env_dir)  # uv's project environment, outside the tree
    return plan


def _plan_poetry(info: PythonProject, envs_dir: Path, interpreter: Interpreter, fresh: bool) -> SetupPlan:
    if shutil.which("poetry") is None:
        problem = "poetry.lock but poetry is not installed (https://python-poetry.org/docs/#installation)"
        return SetupPlan(problems=[problem], reasons=[f"python: {problem}"])
    env_dir = _env_dir(info.root, envs_dir, str(interpreter.path))
    # Poetry installs into the active virtualenv, which plan.env's VIRTUAL_ENV names.
    command = ["poetry", "install", "--no-interaction"]
    if info.poetry_groups:
        command += ["--with", ",".join(info.poetry_groups)]
    if info.extras:
        command += ["--extras", " ".join(info.extras)]
    why = "poetry.lock: the locked dependencies" + (
        f" with {', '.join(info.poetry_groups)}" if info.poetry_groups else ""
    )
    return _managed(
        info, env_dir, [SetupStep(command, info.root, why)], kind="poetry install", create=interpreter, fresh=fresh
    )


def _plan_pip(info: PythonProject, envs_dir: Path, interpreter: Interpreter, fresh: bool) -> SetupPlan:
    env_dir = _env_dir(info.root, envs_dir, str(interpreter.path))
    arguments: list[str] = []
    said: list[str] = []
    if info.installable:
        target = f".[{','.join(info.extras)}]" if info.extras else "."
        arguments += ["-e", target]
        said.append(f"the tree editable ({target})")
    for name in info.requirement_files:
        arguments += ["-r", name]
        said.append(name)
    if info.group_requirements:
        arguments += info.group_requirements
        said.append(f"dependency groups {', '.join(info.groups)}")
    if info.uses_pytest:
        arguments.append("pytest")  # configured but maybe undeclared; pip merges it with any declared pin
        said.append("pytest")
    steps = []
    if arguments:
        python = str(env_dir / "bin" / "python")
        steps.append(SetupStep([python, *_PIP, *arguments], info.root, "install " + ", ".join(said)))
    return _managed(info, env_dir, steps, kind="pip install", create=interpreter, fresh=fresh)


def _managed(
    info: PythonProject,
    env_dir: Path,
    steps: list[SetupStep],
    kind: str,
    create: Interpreter | None = None,
    fresh: bool = False,
) -> SetupPlan:
    """Steps into an environment under envs_dir, or none when its stamp matches the dependency files."""
    plan = _use_env(env_dir, reason="")
    stamp_path = env_dir / STAMP_FILE
    stamp = json.dumps(
        {
            "project": str(info.root),
            "fingerprint": fingerprint(dependency_files(info.root), *(" ".join(s.command) for s in steps)),
        }
    )
    exists = (env_dir / "bin" / "python").exists()
    if exists and not fresh and read_text(stamp_path) == stamp:
        plan.reasons = [f"python: {env_dir} up to date ({kind}; dependency files unchanged)"]
        return plan
    if create is not None and not exists:
        why = f"a virtualenv outside the tree with {create.describe()}"
        steps = [SetupStep([str(create.path), "-m", "venv", str(env_dir)], info.root, why), *steps]
    plan.steps = steps
    plan.stamps = {stamp_path: stamp}
    plan.reasons = [f"python: {kind} into {env_dir}"]
    return plan


def _use_env(env_dir: Path, reason: str) -> SetupPlan:
    return SetupPlan(env={"VIRTUAL_ENV": str(env_dir)}, bin_dirs=[env_dir / "bin"], reasons=[reason] if reason else [])


def _env_dir(root: Path, envs_dir: Path, interpreter_key: str) -> Path:
    """One environment per project path and interpreter: worktrees and versions never share one."""
    digest = hashlib.sha256(f"{root}\0{interpreter_key}".encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", root.name)[:40] or "project"
    return envs_dir / f"{name}-{digest}"
