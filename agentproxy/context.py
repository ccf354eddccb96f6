"""The project context the brain reads: the project's own agent instructions, bounded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_FILES = ("AGENTS.md", "CLAUDE.md")
MAX_CONTEXT_CHARS = 20_000


@dataclass(frozen=True)
class ProjectContext:
    text: str
    sources: tuple[str, ...]


def load_project_context(working_dir: Path, max_chars: int = MAX_CONTEXT_CHARS) -> ProjectContext:
    parts: list[str] = []
    sources: list[str] = []
    for name in PROJECT_FILES:
        path = working_dir / name
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        parts.append(f"## {name}\n{text.strip()}")
        sources.append(str(path))
    text = "\n\n".join(parts)
    return ProjectContext(text=text[:max_chars], sources=tuple(sources))
