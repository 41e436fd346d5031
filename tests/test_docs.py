"""The repository's markdown points only at files that exist: a moved page, a figure not
committed beside a copied report, or a renamed data folder is a broken link a reader meets."""

import re
from pathlib import Path

from conftest import ROOT

# [text](target) and ![alt](target); the target ends at whitespace, ')' or '#'
LINK = re.compile(r"\]\(([^)\s#]+)")


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]


def test_every_relative_link_in_the_markdown_resolves():
    pages = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/**/*.md")]
    assert len(pages) > 20  # the docs tree was found
    broken = [
        f"{page.relative_to(ROOT)} -> {target}"
        for page in pages
        for target in relative_links(page)
        if not (page.parent / target).exists()
    ]
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_the_link_pattern_sees_links_and_images_and_skips_urls(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[a](x.md#part) ![b](img/y.png) [c](https://e.org/z) [d](#here) (e)\n")
    assert relative_links(page) == ["x.md", "img/y.png"]
