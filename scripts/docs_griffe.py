"""A Griffe extension for the Python API page (mkdocs.yml, mkdocstrings' `extensions`).

The project's docstrings list fields and arguments as lines of `name: what it is` (continued on
lines indented by four spaces). Markdown would run them together into one paragraph; this makes
each such line an item of a list, with the name as code, so the page reads as the source does.
"""
from __future__ import annotations

import re

import griffe

FIELD = re.compile(r"^([a-z_][a-z0-9_]*): ", re.MULTILINE)


def field_list(text: str) -> str:
    """`name: what` lines as Markdown list items (a blank line before the first, as lists need)."""
    listed = FIELD.sub(r"- `\1`: ", text)
    return re.sub(r"(?m)^(?!- )(.+)\n(?=- `)", r"\1\n\n", listed)


class FieldLists(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = field_list(obj.docstring.value)
