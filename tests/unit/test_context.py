"""The project context: what is loaded, in which order, and that rendering always fits its budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentproxy.context import EMPTY, MAX_FILE_BYTES, ContextDocument, ProjectContext, load_project_context


def write(path: Path, text: str | bytes, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    write(work / "AGENTS.md", "Use uv. Run the tests.", 100)
    write(work / "CLAUDE.md", "Be brief.", 100)
    return work


def test_order_instructions_then_context_dir_newest_then_history_newest(project: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs / "mission.md", "Make parsing boring.", 1000)
    write(docs / "team" / "okrs.txt", "O1: no flaky tests", 3000)
    write(docs / "standards.MD", "PEP 8", 2000)
    write(docs / "notes.csv", "a,b", 4000)  # not a document type
    history = [("aaaa1111", "older session", 10.0), ("bbbb2222", "newer session", 20.0), ("cccc3333", "  ", 30.0)]
    context = load_project_context(project, docs, history=history)
    assert context.sources == (
        str(project / "AGENTS.md"),
        str(project / "CLAUDE.md"),
        str(docs / "team" / "okrs.txt"),
        str(docs / "standards.MD"),
        str(docs / "mission.md"),
        "session bbbb2222",  # an empty summary says nothing: left out
        "session aaaa1111",
    )
    assert context.documents[2] == ContextDocument(str(docs / "team" / "okrs.txt"), "O1: no flaky tests", 3000)
    assert context.documents[-1].modified == 10.0


def test_images_from_the_dir_newest_first_then_screenshots(project: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    old = write(docs / "old.png", b"\x89PNG", 100)
    new = write(docs / "mock" / "new.JPEG", b"\xff\xd8", 300)
    mid = write(docs / "mid.webp", b"RIFF", 200)
    write(docs / "diagram.svg", "<svg/>", 400)  # not an image type the brain reads
    shot = tmp_path / "shot.png"
    context = load_project_context(project, docs, screenshots=[shot])
    assert context.images == (new, mid, old, shot)


def test_hidden_unreadable_and_oversize_files_are_skipped(project: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write(docs / ".draft.md", "secret", 100)
    write(docs / ".git" / "notes.md", "git internals", 100)
    write(docs / ".hidden.png", b"\x89PNG", 100)
    write(docs / "huge.md", "x" * (MAX_FILE_BYTES + 1), 100)
    write(docs / "latin1.txt", "café".encode("latin-1"), 100)
    context = load_project_context(project, docs)
    names = [Path(source).name for source in context.sources]
    assert names == ["AGENTS.md", "CLAUDE.md", "latin1.txt"]
    assert context.documents[-1].text == "caf\ufffd"  # not UTF-8: decoded with replacement
    assert context.images == ()
    assert context.skipped == (f"{docs / 'huge.md'} (over 1 MB)",)
    assert context.render(10_000).endswith(f"(omitted for space: {docs / 'huge.md'} (over 1 MB))")


def test_symlinked_instructions_and_missing_pieces(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write(work / "AGENTS.md", "rules", 100)
    (work / "CLAUDE.md").symlink_to(work / "AGENTS.md")
    assert load_project_context(work).sources == (str(work / "AGENTS.md"),)
    assert load_project_context(tmp_path / "nowhere", tmp_path / "nodir") == EMPTY
    assert EMPTY.render(1000) == ""


def test_render_sections_in_order_within_a_roomy_budget(project: Path) -> None:
    context = load_project_context(project, history=[("abcd1234", "fixed the parser", 5.0)])
    assert context.render(10_000) == (
        f"## {project / 'AGENTS.md'}\nUse uv. Run the tests.\n\n"
        f"## {project / 'CLAUDE.md'}\nBe brief.\n\n"
        "## session abcd1234\nfixed the parser"
    )


def test_a_huge_document_is_truncated_keeping_its_start_and_cannot_starve_the_rest() -> None:
    huge = ContextDocument("standards.md", "START " + "y" * 5_000_000, 3.0)
    small = [ContextDocument(f"note{i}.md", f"note {i} " * 20, 2.0) for i in range(3)]
    context = ProjectContext((huge, *small), ())
    text = context.render(4000)
    assert len(text) <= 4000
    assert text.startswith("## standards.md\nSTART yyy")
    assert "yyy\n… (truncated)\n\n## note0.md" in text
    for note in small:
        assert f"## {note.source}\n{note.text}" in text
    assert "omitted" not in text  # the small ones all fit in full


def test_a_huge_first_document_takes_the_room_others_do_not_need() -> None:
    context = ProjectContext((ContextDocument("a.md", "a" * 10_000, 1.0), ContextDocument("b.md", "b", 1.0)), ())
    text = context.render(2000)
    assert len(text) > 1900 and text.endswith("## b.md\nb")


def test_agents_md_survives_a_small_budget(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write(work / "AGENTS.md", "Never push to main. " * 50, 100)
    docs = tmp_path / "docs"
    for i in range(20):
        write(docs / f"doc{i:02}.md", f"document {i} " * 100, 1000 + i)
    text = load_project_context(work, docs).render(600)
    assert len(text) <= 600
    assert text.startswith(f"## {work / 'AGENTS.md'}\nNever push to main.")
    assert "… (truncated)" in text
    assert text.splitlines()[-1].startswith("(omitted for space: ")
    assert text.splitlines()[-1].endswith(("more)", "documents)"))  # too many to name them all


def test_omitted_documents_are_named_when_they_fit() -> None:
    docs = tuple(ContextDocument(name, name * 200, 1.0) for name in ("a.md", "b.md", "c.md"))
    text = ProjectContext(docs, ()).render(400)
    assert len(text) <= 400
    assert text.endswith("(omitted for space: c.md)")


@pytest.mark.parametrize("budget", [0, 1, 5, 20, 30, 40, 80, 150, 1000])
def test_tiny_budgets_hold(budget: int) -> None:
    docs = tuple(ContextDocument(f"doc{i}.md", "z" * 500, 1.0) for i in range(200))
    text = ProjectContext(docs, (), ("giant.md (over 1 MB)",)).render(budget)
    assert len(text) <= budget


def test_two_hundred_documents_and_a_five_megabyte_one(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write(work / "AGENTS.md", "instructions " * 10, 100)
    docs = tmp_path / "docs"
    write(docs / "giant.txt", "g" * 5_000_000, 50)  # over the file limit: skipped
    write(docs / "big.md", "b" * 900_000, 60)  # under it: loaded, then truncated
    for i in range(200):
        write(docs / f"d{i:03}.md", f"doc {i} " * (i % 40 + 1), 100 + i)
    context = load_project_context(work, docs)
    assert len(context.documents) == 202
    for budget in (0, 10, 100, 1000, 5000, 20_000, 200_000, 2_000_000):
        text = context.render(budget)
        assert len(text) <= budget, budget
        if budget >= 1000:
            assert text.startswith(f"## {work / 'AGENTS.md'}\n")


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=20_000), max_size=30),
    names=st.integers(min_value=1, max_value=60),
    skipped=st.integers(min_value=0, max_value=3),
    budget=st.integers(min_value=0, max_value=50_000),
)
def test_render_never_exceeds_the_budget(sizes: list[int], names: int, skipped: int, budget: int) -> None:
    docs = tuple(ContextDocument(f"{'n' * names}{i}.md", "t" * size, float(i)) for i, size in enumerate(sizes))
    context = ProjectContext(docs, (), tuple(f"skipped{i}.md (over 1 MB)" for i in range(skipped)))
    text = context.render(budget)
    assert len(text) <= budget
    if docs and budget >= 2 * (len(docs[0].source) + 100) + 200:
        assert text.startswith(f"## {docs[0].source}\n")  # the most relevant document always shows
