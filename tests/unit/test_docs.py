"""The README stays a newcomer's first page, and no link of the documentation leads nowhere."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 15 * 1024
# The README and every Markdown file it and docs/ lead to (the topic documents beside the code).
DOCUMENTS = sorted({ROOT / "README.md", *(ROOT / "docs").glob("**/*.md"), *ROOT.glob("*/README.md")})
MARKDOWN = MarkdownIt("commonmark").enable("table")


def tokens(path: Path) -> list:
    return MARKDOWN.parse(path.read_text(encoding="utf-8"))


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: the heading's text, lower case, without punctuation, spaces as hyphens
    (a repeated heading gets -1, -2, ...)."""
    found: set[str] = set()
    stream = tokens(path)
    for opening, inline in itertools.pairwise(stream):
        if opening.type != "heading_open":
            continue
        text = "".join(child.content for child in inline.children or [] if child.type in ("text", "code_inline"))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def links(path: Path) -> list[str]:
    found = []
    for token in tokens(path):
        for child in token.children or []:
            target = child.attrGet("href") if child.type == "link_open" else child.attrGet("src")
            if child.type in ("link_open", "image") and target:
                found.append(target)
    return found


def test_the_readme_is_at_most_15_kb():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move a section to a topic document in docs/"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    broken = []
    for target in links(document):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:  # an address on the web: not checked offline
            continue
        path = (document.parent / unquote(parts.path)).resolve() if parts.path else document
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif parts.fragment and path.suffix == ".md" and unquote(parts.fragment) not in anchors(path):
            broken.append(f"{target}: no such heading")
    assert not broken, broken


def test_the_anchor_reading_matches_githubs():
    # Headings with code, punctuation and dashes, as GitHub names them.
    assert "local-stack-make-dev" in anchors(ROOT / "local_stack" / "README.md")
    assert "deploying-sam-deploy---guided" in anchors(ROOT / "docs" / "deploying.md")
    assert "the-layers-wings" in anchors(ROOT / "docs" / "architecture.md")
    assert "cold--benchcold_startpy-no-local-stack" in anchors(ROOT / "bench" / "README.md")


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.skipif(not shutil.which("git") or git("rev-parse").returncode, reason="not a git work tree")
def test_the_committed_bench_reports_are_the_cited_ones_and_the_newest():
    """A run's report is ignored; those committed are each cited by a document, or the newest one."""
    reports = sorted({Path(name).stem for name in git("ls-files", "bench/results").stdout.split() if "report-" in name})
    text = "".join(path.read_text(encoding="utf-8") for path in DOCUMENTS)
    uncited = [name for name in reports[:-1] if name.removeprefix("report-") not in text]
    assert not uncited, f"bench reports no document cites: {uncited}"
    assert git("check-ignore", "-q", "bench/results/report-20991231-235959.md").returncode == 0
    assert git("check-ignore", "-q", "bench/results/latest.md").returncode == 1


ARCHITECTURE = ROOT / "docs" / "architecture.md"
LAYER_PACKAGE = ROOT / "layers" / "session_core" / "session_core"
# A file or folder named in backticks: a path with a folder, or a file name with an extension.
PATH_LIKE = re.compile(r"[\w<>.-]+(/[\w<>.-]*)+|[\w<>-]+\.(py|yaml|json|md)")


def where_to_change_what() -> list[str]:
    """Each backticked name in the table of architecture.md's "Where to change what" that looks like a path."""
    stream = tokens(ARCHITECTURE)
    start = next(i for i, (opening, inline) in enumerate(itertools.pairwise(stream))
                 if opening.type == "heading_open" and inline.content == "Where to change what")
    names = []
    for token in stream[start + 3:]:
        if token.type == "heading_open":
            break
        if token.type == "inline" and token.map is not None:
            names += [child.content for child in token.children or []
                      if child.type == "code_inline" and PATH_LIKE.fullmatch(child.content)]
    return names


def named_path_exists(name: str) -> bool:
    """A wing path is under the layer's package, anything else under the repository; `<name>` is any one."""
    pattern = re.sub(r"<[^>]+>", "*", name.rstrip("/"))
    return any(any(base.glob(pattern)) for base in (LAYER_PACKAGE, ROOT))


def test_every_path_in_where_to_change_what_exists():
    names = where_to_change_what()
    assert len(names) > 20  # the table was found and read
    assert [name for name in names if not named_path_exists(name)] == []


def test_the_path_check_sees_a_path_that_is_gone():
    assert named_path_exists("usecases/sessions.py") and named_path_exists("functions/<name>/app.py")
    assert not named_path_exists("usecases/teardown_starter.py")
    assert not named_path_exists("data/repository/")


def test_the_wings_table_names_every_module_of_the_layer():
    # Rows "| <wing> | `module.py`, ... | concept |": a package (`dialects/`) stands for its modules.
    named = set()
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        row = re.match(r"\| (shared|api|usecases|data|platform) \| ([^|]+) \|", line)
        if row:
            folder = "" if row[1] == "shared" else f"{row[1]}/"
            named |= {folder + name for name in re.findall(r"`([\w/.]+)`", row[2])}
    modules = {path.relative_to(LAYER_PACKAGE).as_posix() for path in LAYER_PACKAGE.rglob("*.py")
               if path.name != "__init__.py"}
    unnamed = {m for m in modules if m not in named and not any(m.startswith(n) for n in named if n.endswith("/"))}
    assert unnamed == set()
    assert {n for n in named if not n.endswith("/")} <= modules
