"""Check the relative links of Markdown files that live outside the documentation site.

The site's own pages are checked by Sphinx (a broken link or anchor there fails
``scripts/docs.sh``). README.md and the like are read on a code host and on PyPI,
where nothing checks them: this reports every relative link whose file is missing,
and every ``file.md#anchor`` whose heading is gone.

    python scripts/check_links.py README.md [MORE.md ...]

Exit status 1 when a link is broken.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """The anchor a code host gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(heading) for heading in HEADING.findall(text)}


def broken_links(path: Path) -> list[str]:
    """Each broken relative link of ``path``, described for a person to fix."""
    problems = []
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path.resolve()
        if not linked.exists():
            problems.append(f"{path}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{path}: {target}: no heading with the anchor #{anchor} in {linked.name}")
    return problems


def main(paths: list[str]) -> int:
    problems = [problem for name in paths for problem in broken_links(Path(name))]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"Links checked in {', '.join(paths)}: {len(problems)} broken.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
