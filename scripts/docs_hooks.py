"""MkDocs hooks (mkdocs.yml `hooks:`): the pages that are generated from the code, so they cannot drift.

- `cli/reference.md`: every `stars` command, from the argparse parsers the command line itself uses.
- `qgis/<algorithm>.md`: the hand-written page of each Processing algorithm gets, at its
  `<!-- stars:algorithm -->` marker, the algorithm's own short help (what the dialog shows) and the
  tables of its parameters and outputs, read from the algorithm objects. Every algorithm of the
  provider must have a page and every page an algorithm: the build fails otherwise.
- `results-record.md`: bench/RESULTS.md as it is (it stays the record; the site shows it), and the
  README's picture from resources/.

QGIS's Python is needed to read the algorithms (the project's `.venv` sees it); no QgsApplication is
started.
"""
from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- stars:algorithm -->"
GENERATED = {"cli/reference.md", "results-record.md"}


def _algorithms() -> dict:
    sys.path[:0] = [str(ROOT), "/usr/share/qgis/python/plugins"]
    from stars_qgis.provider import StarsProvider

    algs = {}
    for alg in StarsProvider()._algorithms():
        alg.initAlgorithm({})
        algs[alg.name()] = alg
    return algs


def on_files(files, config):
    algs = _algorithms()
    config["stars_algorithms"] = algs
    pages = {Path(f.src_uri).stem for f in files.documentation_pages() if f.src_uri.startswith("qgis/")} - {"index"}
    if pages != set(algs):
        raise PluginError(f"docs/qgis/ has no page for {sorted(set(algs) - pages) or 'none'} and pages for no "
                          f"algorithm: {sorted(pages - set(algs)) or 'none'}")
    files.append(File.generated(config, "cli/reference.md", content=cli_reference()))
    record = (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "results-record.md", content=record))
    files.append(File.generated(config, "images/demo_quicklook.png",
                                abs_src_path=str(ROOT / "resources" / "demo_quicklook.png")))
    return files


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    if not src.startswith("qgis/") or src == "qgis/index.md":
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"docs/{src} lacks the {MARKER} marker where the algorithm's help goes")
    alg = config["stars_algorithms"][Path(src).stem]
    return markdown.replace(MARKER, algorithm_help(alg))


# --- QGIS algorithms --------------------------------------------------------------------------------

def _cell(text) -> str:
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _has_flag(param, name: str) -> bool:
    from qgis.core import QgsProcessingParameterDefinition

    flag = getattr(QgsProcessingParameterDefinition, f"Flag{name}", None)
    if flag is None:  # QGIS 3.40+: Qgis.ProcessingParameterFlag
        from qgis.core import Qgis

        flag = getattr(Qgis.ProcessingParameterFlag, name)
    return bool(param.flags() & flag)


def _default(param) -> str:
    value = param.defaultValue()
    if value is None or value == "":
        return ""
    if param.type() == "enum":
        options = param.options()
        picks = value if isinstance(value, list) else [value]
        return ", ".join(options[int(v)] for v in picks if str(v).isdigit() and int(v) < len(options))
    return str(value)


def _kind(param) -> str:
    kind = param.type()
    if kind == "enum":
        return "one of: " + "; ".join(param.options())
    return kind


def short_help_markdown(alg) -> str:
    """The dialog's short help as Markdown (it is written with <br> between paragraphs)."""
    text = alg.shortHelpString() or ""
    paragraphs = [re.sub(r"<[^>]+>", "", p).strip() for p in re.split(r"(?:<br>\s*)+", text)]
    return "\n>\n".join(f"> {html.escape(p, quote=False)}" for p in paragraphs if p)


def algorithm_help(alg) -> str:
    rows = []
    for p in alg.parameterDefinitions():
        if p.isDestination():
            continue
        notes = [n for n, on in (("optional", _has_flag(p, "Optional")), ("advanced", _has_flag(p, "Advanced"))) if on]
        rows.append(f"| `{p.name()}` | {_cell(p.description())} | {_cell(_kind(p))} | {_cell(_default(p))} | "
                    f"{', '.join(notes)} |")
    outs = [f"| `{o.name()}` | {_cell(o.description())} | {_cell(o.type())} |" for o in alg.outputDefinitions()]
    return "\n".join([
        f"**Processing id** `stars:{alg.name()}` · **group** {alg.group() or 'STARS'}", "",
        "What the dialog says:", "", short_help_markdown(alg), "",
        "## Parameters", "",
        "| key | in the dialog | kind | default | |", "|---|---|---|---|---|", *rows, "",
        "## Outputs", "",
        "| key | what | kind |", "|---|---|---|", *outs, ""])


# --- the command line --------------------------------------------------------------------------------

def _flags(action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(f"`{s}`" for s in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (action.dest.upper() if not action.choices else "|".join(map(str, action.choices)))
    return f"{names} `{metavar}`"


def _arguments_table(parser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        help_text = (action.help or "") % {"default": action.default} if action.help else ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings and \
                "default" not in help_text:
            help_text += f" (default: {action.default})"
        rows.append(f"| {_flags(action)} | {_cell(help_text)} |")
    return ["| argument | what |", "|---|---|", *rows] if rows else []


def _commands(parser, prefix: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub, helps.get(name)
                yield from _commands(sub, f"{prefix} {name}")


def cli_reference() -> str:
    import os

    sys.path.insert(0, str(ROOT))
    from stars_core.cli import _parser

    os.environ["COLUMNS"] = "100"  # argparse wraps the usage to the terminal: the same page on every machine
    top = _parser()
    lines = ["# Command-line reference", "",
             "Generated from the parsers of the `stars` command itself (`stars COMMAND --help` prints the same).",
             "Options that apply to every command go before it: `stars --threads 2 segment ...`.", "",
             *_arguments_table(top), ""]
    for name, sub, short in _commands(top, "stars"):
        usage = sub.format_usage().replace("usage: ", "").strip()
        lines += [f"## {name}", "", _cell(sub.description or short or ""), "", "```text", usage, "```", "",
                  *_arguments_table(sub), ""]
    return "\n".join(lines)
