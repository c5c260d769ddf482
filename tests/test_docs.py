"""The documentation cannot rot: the site builds in strict mode, and every Python snippet and doctest runs.

What is checked:

- ``mkdocs build --strict`` of ``mkdocs.yml`` succeeds (a broken link, a page missing from the nav, an unresolved
  API cross-reference or a docstring that does not parse fails it). Needs the ``docs`` extra; without mkdocs the
  test is skipped, unless the environment variable ``CI`` is set, where it fails.
- Every fenced ``python`` block of ``README.md`` and of ``docs/**/*.md`` runs. The blocks of one page run in
  order, in one namespace (a later block may use an earlier block's names), in a fresh temporary working
  directory, so that a snippet that writes files writes them there.
- Every ``>>>`` example in camfix's docstrings runs (``doctest``).
- The pictures under ``docs/images/`` (the demo's own folder aside) are each referenced by a page and stay small.
- Every public function and method of the modules the API reference renders documents each of its parameters
  in an Args section and, when it returns something, has a Returns section: the docstrings are parsed as the
  site parses them (griffe, Google style, with ``docs/griffe_sphinx_roles.py``). ``KNOWN_DOCSTRING_GAPS`` lists
  the gaps of this version; a new one fails the test.

Two HTML comments, invisible on the rendered page, control the snippet runner:

``<!-- no-run: reason -->``
    on the line before a block (blank lines between are allowed) skips that block. The reason is required and
    should say what the block needs that a test machine lacks (ImageNet, a GPU, several processes). Keep
    these rare: a guide's runnable version (small random tensors, ``camfix.models.seresnet_small``) belongs
    next to it.

``<!-- setup: description`` ... ``-->``
    hidden code, run at that point of the page in the page's namespace: it defines what a snippet only
    presumes (``model``, ``images``) where showing it would distract. The first line's text after ``setup:``
    is a description; the code is every following line up to the line ``-->``.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, List, Tuple

import pytest

import camfix

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
# Pictures are committed to the repository: keep each small.
MAX_IMAGE_BYTES = 300 * 1024
# docs/images/demo/ belongs to the demo's own page and pipeline.
OWN_IMAGES = [
    path for path in sorted((DOCS / "images").rglob("*"))
    if path.suffix in (".png", ".jpg", ".jpeg") and "demo" not in path.relative_to(DOCS).parts
]

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[\w+-]*)\s*$")
_NO_RUN = re.compile(r"^\s*<!--\s*no-run(?::\s*(?P<reason>.*?))?\s*-->\s*$")
_SETUP = re.compile(r"^\s*<!--\s*setup:")


@dataclass(frozen=True)
class Snippet:
    """A piece of code of a page: a fenced block or a hidden setup comment."""

    page: Path
    line: int  # 1-based line of the first code line
    code: str
    hidden: bool
    skip_reason: str


def extract_snippets(page: Path) -> List[Snippet]:
    """The ``python`` blocks and setup comments of a Markdown page, in page order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    snippets: List[Snippet] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if _SETUP.match(line):
            end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == "-->"), None)
            if end is None:
                raise ValueError(f"{page}:{index + 1}: a <!-- setup: comment needs a closing --> line")
            code = textwrap.dedent("\n".join(lines[index + 1 : end]))
            snippets.append(Snippet(page, index + 2, code, hidden=True, skip_reason=""))
            index = end + 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            index += 1
            continue
        indent = fence.group("indent")
        end = next((j for j in range(index + 1, len(lines)) if lines[j].rstrip() == f"{indent}```"), None)
        if end is None:
            raise ValueError(f"{page}:{index + 1}: unclosed code fence")
        if fence.group("info") == "python":
            code = textwrap.dedent("\n".join(lines[index + 1 : end]))
            snippets.append(Snippet(page, index + 2, code, hidden=False, skip_reason=_skip_reason(page, lines, index)))
        index = end + 1
    return snippets


def _skip_reason(page: Path, lines: List[str], fence_index: int) -> str:
    previous = fence_index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    match = _NO_RUN.match(lines[previous]) if previous >= 0 else None
    if match is None:
        return ""
    if not match.group("reason"):
        raise ValueError(f"{page}:{previous + 1}: <!-- no-run --> needs a reason: <!-- no-run: what it needs -->")
    return match.group("reason")


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


PAGES_WITH_CODE = [page for page in PAGES if extract_snippets(page)]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_page_id)
def test_page_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: Dict[str, object] = {"__name__": f"docs_snippets_{page.stem.replace('-', '_')}"}
    for snippet in extract_snippets(page):
        if snippet.skip_reason:
            continue
        where = f"{_page_id(page)}:{snippet.line}"
        # Padded with blank lines so that a traceback's line numbers are the page's.
        code = "\n" * (snippet.line - 1) + snippet.code
        try:
            exec(compile(code, str(page), "exec"), namespace)
        except Exception as error:  # the page and line of the failing block, then the original error
            raise AssertionError(f"the {'setup comment' if snippet.hidden else 'code block'} at {where} failed: "
                                 f"{type(error).__name__}: {error}") from error


def test_snippet_extraction_conventions(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- setup: names the block presumes\nx = 1\n-->\n\n```python\ny = x + 1\n```\n\n"
        "<!-- no-run: needs ImageNet -->\n\n```python\nraise RuntimeError\n```\n\n```bash\nls\n```\n\n"
        "- a list item:\n\n    ```python\n    z = y\n    ```\n"
    )
    snippets = extract_snippets(page)
    assert [(s.line, s.code, s.hidden, s.skip_reason) for s in snippets] == [
        (4, "x = 1", True, ""),
        (8, "y = x + 1", False, ""),
        (14, "raise RuntimeError", False, "needs ImageNet"),
        (24, "z = y", False, ""),
    ]
    page.write_text("<!-- no-run -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        extract_snippets(page)


def _docstring_examples() -> Dict[str, List[doctest.DocTest]]:
    """The ``>>>`` examples of every public camfix module, by module name (modules without any left out)."""
    examples: Dict[str, List[doctest.DocTest]] = {}
    finder = doctest.DocTestFinder(exclude_empty=True)
    for info in pkgutil.walk_packages(camfix.__path__, prefix="camfix."):
        if info.name.split(".")[-1].startswith("_"):
            continue
        tests = [test for test in finder.find(importlib.import_module(info.name)) if test.examples]
        if tests:
            examples[info.name] = tests
    return examples


DOCSTRING_EXAMPLES = _docstring_examples()


@pytest.mark.parametrize("module_name", sorted(DOCSTRING_EXAMPLES))
def test_docstring_examples_run(module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in DOCSTRING_EXAMPLES[module_name]:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest example(s) of {module_name} failed (output above)"


# (object path, "docstring" | "Args" | "Returns") of incomplete public docstrings that a version tolerates; see
# test_public_docstrings_are_complete. Empty: every public function and method is documented completely. An entry
# added for a new gap must be removed with its fix (the test fails on stale entries too).
KNOWN_DOCSTRING_GAPS: FrozenSet[Tuple[str, str]] = frozenset()


def _docstring_gaps() -> Dict[Tuple[str, str], str]:
    """``{(object path, "docstring" | "Args" | "Returns"): what is missing}`` over the public functions and
    methods of the documented modules."""
    import griffe

    extension = ROOT / "docs" / "griffe_sphinx_roles.py"
    package = griffe.load(
        "camfix", search_paths=[str(ROOT)], docstring_parser="google", extensions=griffe.load_extensions(str(extension))
    )
    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles", extension)
    roles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(roles)
    gaps: Dict[Tuple[str, str], str] = {}

    def check(path: str, function: "griffe.Function") -> None:
        if function.docstring is None:
            gaps[(path, "docstring")] = "no docstring"
            return
        sections = function.docstring.parse("google")
        documented = {p.name for s in sections if s.kind.value == "parameters" for p in s.value}
        parameters = [p.name for p in function.parameters if p.name not in ("self", "cls") and p.kind.value not in
                      ("variadic positional", "variadic keyword")]
        missing = [name for name in parameters if name not in documented]
        if missing:
            gaps[(path, "Args")] = f"Args lacks {', '.join(missing)}"
        returns = str(function.returns) if function.returns is not None else "None"
        if returns != "None" and not any(s.kind.value == "returns" for s in sections):
            gaps[(path, "Returns")] = "no Returns section"

    for module_path in roles.DOCUMENTED_MODULES:
        module = package.modules_collection.get_member(module_path)
        for name in module.exports or ():
            member = module.get_member(name)
            member = member.final_target if member.is_alias else member
            if member.is_function:
                check(f"{module_path}.{name}", member)
            elif member.is_class:
                for method_name, method in member.members.items():
                    # forward and extra_repr are nn.Module hooks, documented by the class (its Shape section).
                    if method_name.startswith("_") or method_name in ("forward", "extra_repr") or method.is_alias:
                        continue
                    if method.is_function:
                        check(f"{module_path}.{name}.{method_name}", method)
    return gaps


def test_public_docstrings_are_complete() -> None:
    if importlib.util.find_spec("griffe") is None:
        if os.environ.get("CI"):
            pytest.fail('griffe (from mkdocstrings) is not installed: pip install -e ".[docs]"')
        pytest.skip('griffe (from mkdocstrings) is not installed: pip install -e ".[docs]"')
    gaps = _docstring_gaps()
    new = sorted(set(gaps) - KNOWN_DOCSTRING_GAPS)
    assert not new, "public docstrings without a parameter or Returns section:\n" + "\n".join(
        f"  {path}: {gaps[(path, kind)]}" for path, kind in new
    )
    stale = sorted(KNOWN_DOCSTRING_GAPS - set(gaps))
    assert not stale, f"KNOWN_DOCSTRING_GAPS lists gaps that are fixed; remove them: {stale}"


def _missing_docs_tools() -> List[str]:
    return [name for name in ("mkdocs", "mkdocstrings", "material") if importlib.util.find_spec(name) is None]


def test_site_builds_strict(tmp_path: Path) -> None:
    missing = _missing_docs_tools()
    if missing:
        message = f'{", ".join(missing)} not installed: pip install -e ".[docs]"'
        if os.environ.get("CI"):
            pytest.fail(f"the docs build must run in CI; {message}")
        pytest.skip(message)
    # Material prints a notice about MkDocs 2.0 on every build unless this is set.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
               "--site-dir", str(tmp_path / "site")]
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, f"mkdocs build --strict failed:\n{completed.stdout}\n{completed.stderr}"
    for page in ("index.html", "fixes/index.html", "api/viz/index.html", "migrate-grad-cam/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


def test_pictures_are_used_and_small() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    for image in OWN_IMAGES:
        relative = image.relative_to(DOCS).as_posix()
        assert relative in text, f"docs/{relative} is not shown by any page"
        assert image.stat().st_size < MAX_IMAGE_BYTES, f"docs/{relative} is {image.stat().st_size} bytes"


def test_figure_script_runs_on_untrained_models(tmp_path: Path) -> None:
    # docs/make_figures.py trains for minutes; its figures are checked here on untrained models and 16 images, so
    # that the script cannot rot between two regenerations of the pictures.
    pytest.importorskip("matplotlib", reason="the figure script needs matplotlib (the docs extra)")
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    make_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    from camfix.demo.data import make_dataset
    from camfix.demo.pipeline import DemoConfig, build_classifier

    config = DemoConfig(theta_tap=make_figures.THETA_TAP)
    models = {pooling: build_classifier(pooling, config).eval() for pooling in ("gap", "tap")}
    data = make_dataset(16, 0, "eval", config.image_size)
    for make, name in ((make_figures.figure_tap, "fix-tap.png"), (make_figures.figure_nwc, "fix-nwc.png"),
                       (make_figures.figure_pas, "fix-pas.png")):
        numbers = make(models, data, tmp_path)
        assert numbers and (tmp_path / name).stat().st_size > 0
