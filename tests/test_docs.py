"""The documentation holds together: every relative link in README.md and docs/*.md reaches a file that exists and,
where it names an ``#anchor``, a heading of that file; the README stays a reference that opens with its two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 350

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`+[^`]*`+")
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" may follow) or at ")".
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, where links and headings are Markdown and not examples."""
    lines, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation dropped except ``-`` and ``_``, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text only
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file; a repeated heading gets ``-1``, ``-2``, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def relative_links(path: Path) -> list[str]:
    """The links of a page that point inside the repository (no scheme such as https: or mailto:)."""
    links = []
    for line in prose_lines(path.read_text()):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not SCHEME.match(target):
                links.append(target)
    return links


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of ``path`` whose file is missing or whose ``#anchor`` names no heading, with the reason
    (paths shown relative to ``root``)."""
    broken = []
    for link in relative_links(path):
        file_part, _, anchor = link.partition("#")
        target = (path.parent / file_part).resolve() if file_part else path.resolve()
        shown = target.relative_to(root) if target.is_relative_to(root) else target
        if not target.exists():
            broken.append(f"{link}: no file {shown}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading with anchor #{anchor} in {shown}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert relative_links(page) or page != README, "the README links to nothing: the link check would be blind"
    broken = broken_links(page)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_link_check_can_fail(tmp_path: Path) -> None:
    """The checker itself: a missing file and a missing anchor are both reported, a good link is not."""
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: `with code`, and more\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[good](other.md#a-section-with-code-and-more) [self](#page) [web](https://example.com/x.md)\n"
        "[no file](missing.md) [no anchor](other.md#nowhere)\n\n```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(page, root=tmp_path.resolve()) == [
        "missing.md: no file missing.md",
        "other.md#nowhere: no heading with anchor #nowhere in other.md",
    ]


def test_slug_follows_github() -> None:
    assert slug("Deployment runtimes: `--backend onnxruntime|openvino`, fp32 and INT8") == (
        "deployment-runtimes---backend-onnxruntimeopenvino-fp32-and-int8"
    )
    assert slug("Predicted latency: the cost model on models it never saw") == (
        "predicted-latency-the-cost-model-on-models-it-never-saw"
    )
    assert slug("EfficientNet and compound scaling (φ × 2)") == "efficientnet-and-compound-scaling-φ--2"


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (at most {README_MAX_LINES})"


def test_readme_opens_with_the_two_commands() -> None:
    """The first code block of the README holds exactly the two commands that work on a fresh clone."""
    text = README.read_text()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert blocks, "README.md has no code block"
    assert [line.strip() for line in blocks[0].splitlines() if line.strip()] == ["make run", "make test"]
    assert text.index("```") < text.index("\n## "), "the two commands come before the first section"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in relative_links(README)}
    orphans = [p.name for p in PAGES if p.parent == ROOT / "docs" and p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"
