"""The repository explains itself (docs/development.md, Tests): no tracked file
refers to a document outside the repository, every relative link of the README and
docs/ leads to a file (and heading) that exists, and the README stays short."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 160

# Written split so that this file does not match itself.
OUTSIDE = [".." + "/shared", "SPEC" + " §", "DESIGN" + " §"]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$")
FENCE = re.compile(r"^(```|~~~)")


def tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    try:
        out = subprocess.run(  # noqa: S603 (a fixed git command)
            [git, "ls-files", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"not a git checkout ({exc})")
    return [ROOT / name for name in out.split("\0") if name]


def markdown_docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def outside_references(text: str) -> list[str]:
    return [needle for needle in OUTSIDE if needle in text]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped (word
    characters, spaces and hyphens kept), spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(path: Path) -> list[str]:
    """Relative links of one markdown file whose file or heading does not exist."""
    broken = []
    text = path.read_text(encoding="utf-8")
    # Links inside code blocks are examples, not links.
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, …
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif not dest.resolve().is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    return broken


def test_no_tracked_file_refers_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for needle in outside_references(text):
            offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_every_relative_link_of_the_docs_leads_somewhere():
    assert (ROOT / "docs").is_dir()
    broken = {
        str(path.relative_to(ROOT)): links
        for path in markdown_docs()
        if (links := broken_links(path))
    }
    assert broken == {}


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; move detail to docs/"
    )


# The checks themselves must be able to fail.


def test_outside_references_are_found():
    assert outside_references("see .." + "/shared/SPEC.md") == [".." + "/shared"]
    assert outside_references("(SPEC" + " §5)") == ["SPEC" + " §"]
    assert outside_references("(DESIGN" + " §4.8)") == ["DESIGN" + " §"]
    assert outside_references("(docs/product.md, Token Requests)") == []


def test_broken_links_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# A\n\n## Token Requests (`/panel/requests/` and `/me/`)\n"
    )
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#token-requests-panelrequests-and-me) "
        "[web](https://example.com/x.md) [gone](docs/missing.md) "
        "[bad](docs/a.md#nowhere) [out](../elsewhere.md)\n"
        "```\n[example](not/a/link.md)\n```\n"
    )
    (tmp_path.parent / "elsewhere.md").write_text("x")
    assert broken_links(page) == [
        "docs/missing.md (no such file)",
        "docs/a.md#nowhere (no such heading)",
        "../elsewhere.md (outside the repository)",
    ]


def test_slug_matches_github():
    assert slug("Invariants and check_ledger") == "invariants-and-check_ledger"
    assert slug("Tokens: pool, limits and minimum") == "tokens-pool-limits-and-minimum"
    assert (
        slug("Sales flow (`/enterprise/request/` and `/staff/`)")
        == "sales-flow-enterpriserequest-and-staff"
    )
