"""The README and docs/ name only what exists: files, modules, and gin bindings that
parse; and the README stays short enough to read in five minutes."""

import glob
import importlib.util
import os
import re

import pytest

from tfaudio import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
TEXT = {page: open(os.path.join(ROOT, page), encoding="utf-8").read() for page in PAGES}
PATH = re.compile(r"\b((?:gin|benchmarks|launch|tests|docs|tfaudio)/[\w/.-]*\w\.(?:gin|py|md))\b")
MODULE = re.compile(r"python -m ([\w.]+)")
BINDING = re.compile(r'--gin_param="([\w.]+\.\w+ = [^"]+)"')


def test_the_readme_is_short_and_links_every_docs_page():
    assert len(TEXT["README.md"].splitlines()) <= 300
    for page in PAGES[1:]:
        assert f"({page})" in TEXT["README.md"], f"README.md does not link {page}"


@pytest.mark.parametrize("page", PAGES)
def test_every_file_and_module_named_exists(page):
    paths = set(PATH.findall(TEXT[page]))
    assert paths, page
    missing = [p for p in sorted(paths) if not os.path.exists(os.path.join(ROOT, p))]
    assert not missing, f"{page} names files that do not exist: {missing}"
    for module in set(MODULE.findall(TEXT[page])):
        assert importlib.util.find_spec(module) is not None, f"{page}: python -m {module}"


@pytest.mark.parametrize("page", PAGES)
def test_every_gin_param_shown_is_a_valid_binding(page):
    for binding in set(BINDING.findall(TEXT[page])):
        config.parse([], [binding], finalize=False)  # raises ConfigError naming the binding


def test_every_benchmark_script_has_a_measured_row():
    scripts = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))
    rows = TEXT["docs/benchmarks.md"]
    assert [s for s in scripts if f"python {s}" not in rows] == []
