"""The project context the brain reads: the project's agent instructions, a context directory of
documents and images (mission, OKRs, coding standards, QA checklists…), and past sessions' summaries.

Loading gathers everything; `render` fits it into a character budget, most relevant first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_FILES = ("AGENTS.md", "CLAUDE.md")
DOCUMENT_SUFFIXES = frozenset({".md", ".txt"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
MAX_FILE_BYTES = 1_000_000  # bigger documents are data dumps, not context; skipped whole, never cut blind
MIN_EXCERPT = 80  # a truncated document shorter than this says nothing: omit it instead
TRUNCATED = "\n… (truncated)"
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class ContextDocument:
    source: str  # path, or "session <id>" for history
    text: str
    modified: float  # mtime / session end time


@dataclass(frozen=True)
class ProjectContext:
    documents: tuple[ContextDocument, ...]  # most relevant first
    images: tuple[Path, ...]  # context-dir images newest first, then the run's screenshots
    skipped: tuple[str, ...] = ()  # documents not loaded at all, with why: "big.md (over 1 MB)"

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(doc.source for doc in self.documents)

    def render(self, max_chars: int) -> str:
        """At most max_chars: "## <source>\\n<text>" sections, then a line naming what did not fit."""
        budget = max_chars
        while True:
            sections, omitted = _fill(self.documents, budget)
            omitted += self.skipped
            body = SEPARATOR.join(sections)
            if not omitted:
                return body
            room = max_chars - len(body) - (len(SEPARATOR) if body else 0)
            if line := _omitted_line(omitted, room):
                return body + SEPARATOR + line if body else line
            if not sections:
                return ""
            # Shrink the sections until the shortest omitted line fits; strictly decreasing, so it ends.
            budget = min(budget - 1, max_chars - len(SEPARATOR) - len(_count_line(len(omitted))))


EMPTY = ProjectContext((), ())


def load_project_context(
    working_dir: Path,
    context_dir: Path | None = None,
    screenshots: Sequence[Path] = (),
    history: Sequence[tuple[str, str, float]] = (),
) -> ProjectContext:
    """history: (session_id, summary, ended_at) of earlier sessions in this project."""
    seen: set[Path] = set()  # CLAUDE.md is often a symlink to AGENTS.md, or the context dir holds a copy
    documents: list[ContextDocument] = []
    skipped: list[str] = []
    for name in PROJECT_FILES:
        _add_document(working_dir / name, documents, skipped, seen)
    dir_documents: list[ContextDocument] = []
    images: list[tuple[float, Path]] = []
    if context_dir is not None:
        for path in _visible_files(context_dir):
            suffix = path.suffix.lower()
            if suffix in DOCUMENT_SUFFIXES:
                _add_document(path, dir_documents, skipped, seen)
            elif suffix in IMAGE_SUFFIXES:
                images.append((_mtime(path), path))
    documents += sorted(dir_documents, key=lambda doc: (-doc.modified, doc.source))
    past = [ContextDocument(f"session {sid}", summary.strip(), ended) for sid, summary, ended in history]
    documents += sorted((doc for doc in past if doc.text), key=lambda doc: (-doc.modified, doc.source))
    ordered_images = [path for _, path in sorted(images, key=lambda item: (-item[0], str(item[1])))]
    return ProjectContext(tuple(documents), tuple(ordered_images) + tuple(screenshots), tuple(skipped))


def _visible_files(root: Path) -> list[Path]:
    """Every file under root, hidden files and directories left out; symlinked directories not followed."""
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        found += (Path(directory) / name for name in sorted(files) if not name.startswith("."))
    return found


def _add_document(path: Path, into: list[ContextDocument], skipped: list[str], seen: set[Path]) -> None:
    try:
        real = path.resolve()
        if real in seen or not path.is_file():
            return
        seen.add(real)
        stat = path.stat()
        if stat.st_size > MAX_FILE_BYTES:
            skipped.append(f"{path} (over 1 MB)")
            return
        text = path.read_bytes().decode("utf-8", errors="replace").strip()
    except OSError:
        skipped.append(f"{path} (unreadable)")
        return
    if text:
        into.append(ContextDocument(str(path), text, stat.st_mtime))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # vanished since the walk: sort it last
        return 0.0


def _fill(documents: Sequence[ContextDocument], budget: int) -> tuple[list[str], tuple[str, ...]]:
    """Sections within budget, in order; each capped so one huge document cannot starve the rest."""
    full = [len(_header(doc)) + len(doc.text) for doc in documents]
    sections: list[str] = []
    omitted: list[str] = []
    remaining = budget
    for index, doc in enumerate(documents):
        available = remaining - (len(SEPARATOR) if sections else 0)
        later = documents[index + 1 :]
        still_needed = sum(full[index + 1 :]) + len(SEPARATOR) * len(later)
        # A document may exceed half the budget only with room the later ones do not need.
        cap = min(available, max(budget // 2, available - still_needed))
        section = _section(doc, cap)
        if section is None:
            omitted.append(doc.source)
            continue
        remaining = available - len(section)
        sections.append(section)
    return sections, tuple(omitted)


def _header(doc: ContextDocument) -> str:
    return f"## {doc.source}\n"


def _section(doc: ContextDocument, cap: int) -> str | None:
    header = _header(doc)
    if len(header) + len(doc.text) <= cap:
        return header + doc.text
    keep = cap - len(header) - len(TRUNCATED)
    if keep < MIN_EXCERPT:
        return None
    return header + doc.text[:keep] + TRUNCATED  # the start: documents are instructions, read top down


def _omitted_line(names: Sequence[str], room: int) -> str:
    """The longest "(omitted for space: …)" line that fits in room, or "" when none does."""
    for listed in range(len(names), 0, -1):
        rest = len(names) - listed
        line = f"(omitted for space: {', '.join(names[:listed])}{f' and {rest} more' if rest else ''})"
        if len(line) <= room:
            return line
    line = _count_line(len(names))
    return line if len(line) <= room else ""


def _count_line(count: int) -> str:
    return f"(omitted for space: {count} document{'s' if count != 1 else ''})"
