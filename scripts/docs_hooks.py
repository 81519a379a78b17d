"""MkDocs hooks (mkdocs.yml `hooks:`): the pages that are generated from the code, so they cannot drift.

- `cli/reference.md`: every `stars` command, from the argparse parsers the command line itself uses.
- `qgis/<algorithm>.md`: the hand-written page of each Processing algorithm gets, at its
  `<!-- stars:algorithm -->` marker, the algorithm's own short help (what the dialog shows) and the
  tables of its parameters and outputs, read from the algorithm objects. Every algorithm of the
  provider must have a page and every page an algorithm: the build fails otherwise.
- `results-record.md`: bench/RESULTS.md as it is (it stays the record; the site shows it), kept out
  of the search index (13,000 words of bench tables would answer every search first), and the
  README's picture from resources/.

It also checks what a reader would trip on, and fails the build on it: a line of a code block over
80 characters in a page (cut off at 1280 px), and "session" for the project's own work
sessions in README, docs or the record (label a measurement by date, commit and machine instead;
a QGIS session and ONNX Runtime's sessions are fine).

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
RECORD = "results-record.md"
CODE_WIDTH = 80  # characters of a code line that fit the content column at 1280 px (82, measured)
# "session" that is not the project's own work session: QGIS's, ONNX Runtime's and OpenVINO's
# sessions, and pytest's session-scoped fixtures (InferenceSession is one word: never a match)
OTHER_SESSIONS = re.compile(r"QGIS\s+sessions?|(?:ONNX\s+Runtime(?:'s)?|OpenVINO|calibration)"
                            r"\s+sessions?|sessions?\s+(?:factory|options)|session-scoped|scope=.session.",
                            re.IGNORECASE)


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
    reference = cli_reference()
    files.append(File.generated(config, "cli/reference.md", content=reference))
    record = (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    files.append(File.generated(config, RECORD, content=record))
    problems = check_text(files, record, reference)
    if problems:
        raise PluginError("\n".join(problems))
    files.append(File.generated(config, "images/demo_quicklook.png",
                                abs_src_path=str(ROOT / "resources" / "demo_quicklook.png")))
    return files


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    if src == RECORD:
        page.meta["search"] = {"exclude": True}  # Material's search plugin leaves the page out
        return markdown
    if not src.startswith("qgis/") or src == "qgis/index.md":
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"docs/{src} lacks the {MARKER} marker where the algorithm's help goes")
    alg = config["stars_algorithms"][Path(src).stem]
    return markdown.replace(MARKER, algorithm_help(alg))


# --- checks of the hand-written text -------------------------------------------------------------

def check_text(files, record: str, reference: str) -> list[str]:
    """What `session_wording` and `long_code_lines` find in README, the pages, the record and the reference."""
    problems = session_wording(record, "bench/RESULTS.md") + long_code_lines(record, "bench/RESULTS.md")
    problems += long_code_lines(reference, "cli/reference.md")
    problems += session_wording((ROOT / "README.md").read_text(encoding="utf-8"), "README.md")
    for f in files.documentation_pages():
        if f.src_uri not in GENERATED:
            text = Path(f.abs_src_path).read_text(encoding="utf-8")
            problems += session_wording(text, f"docs/{f.src_uri}") + long_code_lines(text, f"docs/{f.src_uri}")
    return problems


def session_wording(text: str, name: str) -> list[str]:
    """Each "session" of `text` that names the project's own work sessions, as `name:line: ...`."""
    masked = OTHER_SESSIONS.sub(lambda m: re.sub(r"\S", "x", m.group(0)), text)
    found = []
    for m in re.finditer(r"\bsessions?\b", masked, re.IGNORECASE):
        line = text.count("\n", 0, m.start()) + 1
        found.append(f"{name}:{line}: 'session' for the project's work: label it by date, commit and machine "
                     f"instead: {text.splitlines()[line - 1].strip()[:100]}")
    return found


def long_code_lines(markdown: str, name: str) -> list[str]:
    """Each line of a fenced code block longer than CODE_WIDTH, as `name:line: ...`."""
    found, fence = [], None
    for number, line in enumerate(markdown.splitlines(), 1):
        mark = re.match(r"\s*(`{3,}|~{3,})", line)
        if mark and (fence is None or mark.group(1)[0] == fence[0] and len(mark.group(1)) >= len(fence)):
            fence = mark.group(1) if fence is None else None
        elif fence is not None and len(line) > CODE_WIDTH:
            found.append(f"{name}:{number}: a code line of {len(line)} characters (at most {CODE_WIDTH} fit at "
                         f"1280 px): wrap it (a shell line ends with ' \\')")
    return found


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


def _key(name: str) -> str:
    """A parameter or output key as code that never breaks mid-word (docs/assets/stars.css)."""
    return f'<code class="stars-key">{html.escape(name)}</code>'


def algorithm_help(alg) -> str:
    rows = []
    for p in alg.parameterDefinitions():
        if p.isDestination():
            continue
        notes = [n for n, on in (("optional", _has_flag(p, "Optional")), ("advanced", _has_flag(p, "Advanced"))) if on]
        rows.append(f"| {_key(p.name())} | {_cell(p.description())} | {_cell(_kind(p))} | {_cell(_default(p))} | "
                    f"{', '.join(notes)} |")
    outs = [f"| {_key(o.name())} | {_cell(o.description())} | {_cell(o.type())} |" for o in alg.outputDefinitions()]
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
        if action.default not in (None, False, [], (), argparse.SUPPRESS) and action.option_strings and \
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

    os.environ["COLUMNS"] = str(CODE_WIDTH + 2)  # argparse wraps to COLUMNS - 2: the same page on every machine
    top = _parser()
    lines = ["# Command-line reference", "",
             "Generated from the parsers of the `stars` command itself (`stars COMMAND --help` prints the same).",
             "Options that apply to every command go before it: `stars --threads 2 segment ...`.", "",
             *_arguments_table(top), ""]
    for name, sub, short in _commands(top, "stars"):
        # argparse aligns the usage's lines under the command; 4 spaces keep them within CODE_WIDTH
        usage = "\n    ".join(line.strip() for line in sub.format_usage().replace("usage: ", "").strip().splitlines())
        lines += [f"## {name}", "", _cell(sub.description or short or ""), "", "```text", usage, "```", "",
                  *_arguments_table(sub), ""]
    return "\n".join(lines)
