"""A griffe extension for the API reference: camfix's docstrings cite with Sphinx roles, the site is Markdown.

camfix writes cross-references the way torchvision and timm do, as Sphinx roles (``:func:`tap```,
``:class:`~camfix.crf.DenseCRFParams```, ``:data:`NO_BOX```). mkdocstrings renders Markdown, where a role would
show up verbatim, so before rendering each role becomes:

- an autorefs link ``[`tap`][camfix.pooling.tap]`` when the name resolves, from the docstring's own scope, to an
  object of camfix that the reference documents (a public member of a module listed in ``DOCUMENTED_MODULES``);
- inline code ``` `tap` ``` otherwise (a name of torch, numpy or the standard library, say).

An attribute documented the Sphinx way, by ``#:`` comment lines above it, gets them as its docstring.

An Args entry that documents several parameters at once (``mean, std: ...``) is repeated for each name, so
that the parameter table lists both.

So a docstring never needs Markdown-specific syntax, and a reference to a documented object is always a link
(``mkdocs build --strict`` then checks every one of them).
"""

from __future__ import annotations

import re
from typing import Any, List, Optional

import griffe

#: Modules that have a page under docs/api/ (one ``::: module`` directive each).
DOCUMENTED_MODULES = (
    "camfix.pooling",
    "camfix.maps",
    "camfix.thresholds",
    "camfix.boxes",
    "camfix.localize",
    "camfix.adapters",
    "camfix.crf",
    "camfix.metrics",
    "camfix.viz",
    "camfix.models",
    "camfix.cli_support",
)

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|const|mod|obj|exc):`(~?)([\w.]+)`")
_SECTIONS = ("Args:", "Arguments:", "Parameters:", "Attributes:")
# "mean, std: text" documents two parameters at once; Google style wants one entry per name.
_SHARED_ENTRY = re.compile(r"^(?P<indent>\s+)(?P<names>\w+(?:, \w+)+)(?P<rest>:.*)$")


def _split_shared_entries(text: str) -> str:
    """Repeat an ``a, b: description`` entry of an Args/Attributes section once per name."""
    lines = text.splitlines()
    out: List[str] = []
    section_indent: Optional[int] = None
    index = 0
    while index < len(lines):
        line = lines[index]
        indent = len(line) - len(line.lstrip())
        if line.strip() in _SECTIONS:
            section_indent = indent
        elif section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None
        match = _SHARED_ENTRY.match(line) if section_indent is not None else None
        if match is None:
            out.append(line)
            index += 1
            continue
        entry_indent = len(match.group("indent"))
        end = index + 1
        # The entry runs on over the blank and the more indented lines that follow it.
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > entry_indent
        ):
            end += 1
        for name in match.group("names").split(", "):
            out.append(f"{match.group('indent')}{name}{match.group('rest')}")
            out.extend(lines[index + 1 : end])
        index = end
    return "\n".join(out)


def _final_path(modules: Any, path: str) -> Optional[str]:
    """The path of the object that ``path`` names, through aliases (re-exports); None if there is none."""
    try:
        target = modules.get_member(path)
        return (target.final_target if target.is_alias else target).path
    except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError):
        return None


def _rendered_path(modules: Any, path: str) -> Optional[str]:
    """The path under which the reference renders the object at ``path``; None when no page renders it.

    A module page renders the public names of its module and their public members. A name that a package
    re-exports from a private submodule (``camfix.metrics.localization.BoxAccuracy``) is rendered under the
    package (``camfix.metrics.BoxAccuracy``).
    """
    for module in DOCUMENTED_MODULES:
        if path == module:
            return path
        if not path.startswith(module + "."):
            continue
        for name in modules.get_member(module).exports or ():
            exported = _final_path(modules, f"{module}.{name}")
            if exported is not None and (path == exported or path.startswith(exported + ".")):
                rest = path[len(exported) :].split(".")[1:]
                if not any(part.startswith("_") for part in rest):
                    return ".".join([module, name, *rest])
    return None


def _documented_path(obj: griffe.Object, name: str) -> Optional[str]:
    """The rendered path of ``name`` as a docstring of ``obj`` means it (its scope first, then absolute)."""
    modules = obj.modules_collection
    head, _, tail = name.partition(".")
    candidates = [name]
    try:
        scoped = obj.resolve(head)
        candidates.insert(0, f"{scoped}.{tail}" if tail else scoped)
    except (griffe.NameResolutionError, ValueError):
        pass
    for candidate in candidates:
        path = _final_path(modules, candidate)
        if path is not None:
            return _rendered_path(modules, path)
    return None


def _sphinx_comment(attribute: griffe.Object) -> str:
    """The ``#:`` comment lines just above a module or class attribute (Sphinx's attribute docs), as text."""
    if attribute.lineno is None:
        return ""
    try:
        lines = attribute.lines_collection[attribute.filepath]
    except (KeyError, TypeError):
        return ""
    comment: List[str] = []
    index = attribute.lineno - 2
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        comment.insert(0, lines[index].lstrip()[2:].strip())
        index -= 1
    return "\n".join(comment)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles in every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, set())

    def _rewrite(self, obj: griffe.Object, seen: set) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is None and obj.is_attribute:
            comment = _sphinx_comment(obj)
            if comment:
                obj.docstring = griffe.Docstring(comment, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:

            def replace(match: "re.Match[str]") -> str:
                short, name = match.group(1), match.group(2)
                label = name.split(".")[-1] if short else name
                path = _documented_path(obj, name)
                return f"[`{label}`][{path}]" if path else f"`{label}`"

            obj.docstring.value = _ROLE.sub(replace, _split_shared_entries(obj.docstring.value))
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)
