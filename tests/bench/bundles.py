"""The bundle round trip of issue 9 (`make bench`): a repository of about 50 MB between supervisor and worker.

1. Base, first: the worker holds nothing; the supervisor bundles the subtask's base commit in full, it
   travels in chunks (written to disk as they come), the worker takes it into its cached clone and makes
   the subtask's worktree. Twice: with the commits' objects loose, as git add left them (git compresses
   them again for the bundle), then packed by git gc (reused as they are), to another fresh worker.
2. Base, incremental: one more small commit on the supervisor; the bundle leaves out what the worker's
   clone announces (its heads), then the same steps.
3. Result: the agent's change committed in the worktree, bundled, sent in chunks, fetched into the
   supervisor's repository on the subtask's branch.
The content is random (git cannot compress it). No target: the figures are printed; exits 0 when it works.

    python tests/bench/bundles.py [--megabytes N] [--files N] [--commits N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from agentproxy.bridge.bundles import Reassembly, WorkerRepos, chunks, fetch_result, repo_id, write_base_bundle
from agentproxy.bridge.protocol import CHUNK_BYTES
from agentproxy.workspace import Workspace
from agentproxy.worktrees import run_git

MEGABYTES = 50
FILES = 300
COMMITS = 5
SESSION = "ab12cd34"
MB = 1024 * 1024
T = TypeVar("T")


@dataclass
class Trip:
    """One bundle's way from one host to the other: seconds per step, and the bundle's size."""

    name: str
    steps: dict[str, float] = field(default_factory=dict)
    size: int = 0
    chunks: int = 0

    def timed(self, step: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = work()
        self.steps[step] = time.perf_counter() - started
        return result


def make_project(project: Path, megabytes: int, files: int, commits: int) -> None:
    """A repository of random files (about megabytes in all), committed a few at a time."""
    project.mkdir()
    run_git(project, "init", "-q", "-b", "main")
    file_bytes = megabytes * MB // files
    per_commit = -(-files // commits)
    for first in range(0, files, per_commit):
        for number in range(first, min(first + per_commit, files)):
            (project / f"data{number // 50:02d}").mkdir(exist_ok=True)
            (project / f"data{number // 50:02d}" / f"file{number:04d}.bin").write_bytes(os.urandom(file_bytes))
        run_git(project, "add", "-A")
        run_git(project, "commit", "-q", "-m", f"files from {first}")


def transfer(trip: Trip, bundle: Path, received: Path) -> Path:
    """The bundle as the other host gets it: chunk by chunk, each written at its offset."""
    reassembly = Reassembly(received)
    for index, count, data in chunks(bundle):
        reassembly.add(index, count, data)
        trip.chunks = count
    if not reassembly.complete:
        raise SystemExit(f"{bundle.name} did not arrive whole")
    trip.size = bundle.stat().st_size
    return received


def send_base(trip: Trip, project: Path, worker: WorkerRepos, name: str, scratch: Path) -> Path:
    """A subtask's base from the supervisor to a fresh worktree on the worker; the worktree."""
    identity, base, branch = repo_id(project), Workspace(project).head(), f"agentproxy/{SESSION}/{name}"
    run_git(project, "branch", branch, base)  # the supervisor's subtask branch, checked out nowhere
    haves = worker.heads(identity)
    bundle = trip.timed("bundle", lambda: write_base_bundle(project, base, branch, scratch / f"{name}.up", haves))
    if bundle is None:
        raise SystemExit(f"no base bundle for {name}: the worker should lack {base}")
    received = trip.timed("chunks", lambda: transfer(trip, bundle, scratch / f"{name}.down"))
    trip.timed("take", lambda: worker.take_bundle(identity, received, branch))
    return trip.timed("worktree", lambda: worker.make_worktree(identity, branch, base, worker.worktrees / name))


def send_result(trip: Trip, project: Path, worker: WorkerRepos, name: str, tree: Path, scratch: Path) -> None:
    """The agent's work in the worktree, committed and brought back onto the supervisor's subtask branch."""
    identity, base, branch = repo_id(project), Workspace(project).head(), f"agentproxy/{SESSION}/{name}"
    (tree / "agent.txt").write_text("the agent's work\n")
    (tree / "data00" / "file0000.bin").write_bytes(os.urandom(100_000))
    head = trip.timed("commit", lambda: worker.commit_work(tree, f"subtask {name}"))
    bundle = trip.timed("bundle", lambda: worker.write_result_bundle(identity, branch, base, scratch / "result.up"))
    if bundle is None:
        raise SystemExit("no result bundle: the agent's change was not committed")
    received = trip.timed("chunks", lambda: transfer(trip, bundle, scratch / "result.down"))
    trip.timed("fetch", lambda: fetch_result(project, received, head, branch))
    if run_git(project, "show", f"{branch}:agent.txt") != "the agent's work\n":
        raise SystemExit("the result did not arrive on the subtask's branch")


def report(trips: list[Trip], repository_mb: float, files: int) -> None:
    print(f"\nbundle round trip: a repository of {repository_mb:.1f} MB in {files} random files")
    print(f"chunks of {CHUNK_BYTES // 1024} KiB, on {os.cpu_count()} cores\n")
    steps = list(dict.fromkeys(step for trip in trips for step in trip.steps))
    header = "".join(f"{step + ' s':>11}" for step in steps)
    print(f"{'':<20}{'bundle':>10}{'chunks':>8}{header}{'total s':>10}")
    for trip in trips:
        figures = "".join(f"{trip.steps[step]:>11.2f}" if step in trip.steps else f"{'':>11}" for step in steps)
        print(f"{trip.name:<20}{size(trip.size):>10}{trip.chunks:>8}{figures}{sum(trip.steps.values()):>10.2f}")


def size(count: int) -> str:
    return f"{count / MB:.1f} MB" if count >= MB else f"{count / 1024:.1f} KB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=MEGABYTES)
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--commits", type=int, default=COMMITS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentproxy-bundles-") as root:
        root_path = Path(root)
        # No system or user configuration (signing, hooks) changes what is measured.
        (root_path / "gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
        os.environ.update({"GIT_CONFIG_GLOBAL": str(root_path / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1"})
        project, worker, scratch = root_path / "project", WorkerRepos(root_path / "worker"), root_path / "scratch"
        scratch.mkdir()
        make_project(project, args.megabytes, args.files, args.commits)
        first, packed = Trip("base, first"), Trip("base, first, packed")
        incremental, result = Trip("base, incremental"), Trip("result")
        send_base(first, project, worker, "t1", scratch)
        run_git(project, "gc", "-q")
        send_base(packed, project, WorkerRepos(root_path / "another-worker"), "t0", scratch)
        (project / "notes.txt").write_text("one more small commit\n")
        Workspace(project).commit_all("a small change")
        tree = send_base(incremental, project, worker, "t2", scratch)
        send_result(result, project, worker, "t2", tree, scratch)
        repository_mb = sum(path.stat().st_size for path in project.rglob("*.bin")) / MB
    report([first, packed, incremental, result], repository_mb, args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
