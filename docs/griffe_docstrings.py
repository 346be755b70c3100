"""A griffe extension that adapts jaxloss's docstrings to the docs site.

- ``Example:`` (the section name the package uses) becomes ``Examples:``, so griffe renders
  its doctest lines as code instead of as a note.
- ``:func:`name``` becomes a link to ``jaxloss.name`` in the API reference.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_FUNC_ROLE = re.compile(r":func:`~?(?:jaxloss\.)?(\w+)`")


def adapt(text: str) -> str:
    """The docstring ``text`` with the two rewrites above applied."""
    text = _EXAMPLE.sub(r"\1Examples:", text)
    return _FUNC_ROLE.sub(r"[`\1`][jaxloss.\1]", text)


class JaxlossDocstrings(griffe.Extension):
    """Applies :func:`adapt` to the docstring of every function griffe loads."""

    def on_function_instance(self, *, func: griffe.Function, **kwargs: Any) -> None:
        if func.docstring is not None:
            func.docstring.value = adapt(func.docstring.value)
