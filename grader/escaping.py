"""Student-controlled text on its way out: to a terminal, a spreadsheet, a JSON file, a file name.

Ids (folder and zip names), file and member names, exception messages, captured output and
LMS names are all chosen by students, so each is hostile wherever it is shown or written:

- a **terminal** obeys the escape sequences in it: ``ESC [2J`` clears the screen, ``ESC ]52``
  writes the clipboard, ``ESC ]0`` sets the window title, ``ESC ]8`` makes links, a bare
  ``CR`` or backspace overwrites what was printed, and U+202E turns the rest of a line around.
  ``rich`` additionally reads ``[...]`` as markup in every plain ``str`` it prints (links,
  styles, and a ``MarkupError`` crash on a stray ``[/]``). So terminal output goes through
  :func:`terminal` (controls shown visibly, as ``\\x1b``) and :func:`shown` (a ``rich`` Text,
  never parsed as markup).
- a **spreadsheet** runs a CSV cell that begins with ``=``, ``+``, ``-``, ``@``, TAB or CR as
  a formula (``=HYPERLINK(...)`` leaks data, ``+cmd|' -C calc'!A0`` runs a program through
  DDE): :func:`spreadsheet_cell` follows OWASP's "CSV Injection" rules.
- a **JSON or UTF-8 file** cannot hold a lone surrogate (``"\\ud800"``, which ``json.loads``
  happily returns): ``str.encode`` raises, and one student's message would stop an export for
  the whole class. :func:`valid_unicode`, :func:`json_safe` and :func:`json_text` replace it.
- a **file name** made of an id may hold ``/``, ``..`` or characters no file system takes:
  :func:`file_name`.

The invariant: what the grader shows and writes is escaped at the point of showing or writing,
however the text got into a result document. Numbers the grader itself computes are never
touched, so numeric columns stay numeric.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rich.text import Text

T = TypeVar("T")

# --------------------------------------------------------------------------- terminal


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(ch: str) -> str:
    """``\\x1b``, ``\\u202e``, ``\\U000e0041``: how Python's repr writes it, so it reads as code."""
    n = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def _shown_as_is(ch: str, keep: str) -> bool:
    """Printable characters and ordinary spaces pass; every other "Other" or "Separator"
    character (C0 and C1 controls, ESC, DEL, format characters such as the bidi overrides and
    zero-width spaces, surrogates, private use, unassigned, line and paragraph separators) is
    shown escaped. ``keep`` lists the controls the caller lays out itself (newline, tab)."""
    return ch.isprintable() or ch in keep or unicodedata.category(ch) == "Zs"


def terminal(value: object, *, multiline: bool = False) -> str:
    """``value`` as text a terminal shows and never obeys.

    Every control character (ESC and with it every CSI and OSC sequence, BEL, CR, backspace,
    the C1 controls such as U+009B, a one-character CSI), bidi override, invisible format
    character and lone surrogate is replaced by its visible escape, e.g. ``\\x1b[2J``: the
    reader sees that something odd was there, and the terminal gets only printable text.
    ``multiline`` keeps newlines and tabs, for messages and output printed as several lines.
    Printable text, including non-ASCII names, is unchanged. Rich markup is *not* escaped
    here: print the result as a ``rich.text.Text`` (:func:`shown`), never as a ``str``.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the usual case: nothing to do
        return text
    keep = "\n\t" if multiline else ""
    if multiline and text.replace("\n", "").replace("\t", "").isprintable():
        return text  # printed output and code: lines of printable text (2 s of a class report)
    return "".join(ch if _shown_as_is(ch, keep) else _escape_char(ch) for ch in text)


def shown(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """``value`` as a ``rich`` Text: :func:`terminal`-escaped and never read as markup, so
    ``[link=...]`` or ``[/]`` in a name is printed as it is written."""
    from rich.text import Text

    return Text(terminal(value, multiline=multiline), style=style)


def joined(*parts: object) -> Text:
    """One line of fixed, styled labels and student text: ``joined(("skipped: ", "yellow"), name)``.

    A ``(text, style)`` tuple is the grader's own wording and printed as given; anything else is
    student-controlled and goes through :func:`terminal`. No part is ever read as markup.
    """
    from rich.text import Text

    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(str(part[0]), style=str(part[1]))
        elif isinstance(part, Text):
            out.append_text(part)
        else:
            out.append(terminal(part))
    return out


# --------------------------------------------------------------------------- unicode and JSON

_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters that are valid JSON but that a terminal (``cat results.json``), an editor or an old
# JavaScript parser would act on: C1 controls, bidi controls, zero-width and line separators.
_JSON_INVISIBLE = re.compile("[\u0080-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def valid_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it can always be encoded.

    ``json.loads('"\\\\ud800"')`` returns a str that ``.encode()`` refuses; a result document
    (a student's exception message) can carry one. A proper surrogate pair is joined into its
    character first, so nothing encodable is lost.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def json_safe(data: T) -> T:
    """A copy of a JSON value (dicts, lists, strings, numbers) with :func:`valid_unicode` applied
    to every string, keys included: what an export writes can always be encoded as UTF-8."""
    if isinstance(data, str):
        return valid_unicode(data)  # type: ignore[return-value]
    if isinstance(data, dict):
        return {valid_unicode(k) if isinstance(k, str) else k: json_safe(v)  # type: ignore[return-value]
                for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]  # type: ignore[return-value]
    return data


def json_text(data: Any, **dumps: Any) -> str:
    """``json.dumps`` of ``data`` that never fails on a string and never hides anything.

    UTF-8 text stays readable (``ensure_ascii=False``), lone surrogates become U+FFFD, and
    invisible or terminal-controlling characters inside strings are written as ``\\uXXXX``
    escapes (control characters below U+0020 already are), so ``cat`` on an export is safe and
    the LMS still reads exactly the same strings. ``dumps`` are further ``json.dumps`` options.
    """
    text = json.dumps(json_safe(data), ensure_ascii=False, **dumps)
    # Outside strings JSON is ASCII, so every match is inside a string, where \\uXXXX means it.
    return _JSON_INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# --------------------------------------------------------------------------- spreadsheets

# OWASP "CSV Injection": a cell must not begin with = + - @ TAB or CR; ASVS 1.2.10 adds NUL.
# LF is there for the same reason as CR, and the full-width forms because some spreadsheet
# locales (Japanese input) read them as the ASCII operators.
FORMULA_START = frozenset("=+-@\t\r\n\0\uff1d\uff0b\uff0d\uff20")
# OWASP: the field separator matters too. Python's csv quotes a cell that holds a comma, a
# quote or a line break, but not a semicolon or a TAB, the separators a spreadsheet set to
# another locale splits on: there the piece after one begins a cell of its own.
_SPLIT_FORMULA = re.compile("(?<=[;\t])(?=[=+\\-@\t\r\n\0\uff1d\uff0b\uff0d\uff20])")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_cell(value: T) -> T | str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula (OWASP CSV Injection).

    A text cell that begins with ``=``, ``+``, ``-``, ``@``, TAB, CR, LF, NUL (or a full-width
    ``＝ ＋ － ＠``) gets a single quote in front, which spreadsheets take as "this is text" and do
    not display; so does every piece of it after a ``;`` or TAB that a spreadsheet splitting on
    those would start a new cell with. A plain number such as ``-2.5`` is left alone, and so is
    anything that is not a str (the grader's own scores): numeric columns stay numeric.
    Lone surrogates become U+FFFD (:func:`valid_unicode`), so the file can be written, and
    control characters other than newline and TAB are shown as escapes (:func:`terminal`).
    Prefixing is idempotent: a neutralised cell begins with ``'`` and is not prefixed again.
    """
    if not isinstance(value, str):
        return value
    # Control characters shown as their escapes, as on a terminal (newlines and tabs kept):
    # ``cat scores.csv`` must not clear the screen or set the window title either.
    text = terminal(valid_unicode(value), multiline=True)
    if _NUMBER.fullmatch(text):
        return text
    if text[:1] in FORMULA_START:
        text = "'" + text
    if ";" in text or "\t" in text:
        text = _SPLIT_FORMULA.sub("'", text)
    return text


def spreadsheet_row(values: Iterable[object]) -> list[object]:
    """Every cell of a row through :func:`spreadsheet_cell`, for ``csv.writer.writerow``."""
    return [spreadsheet_cell(v) for v in values]


# --------------------------------------------------------------------------- file names

_NAME_UNSAFE = re.compile(r'[/\\:*?"<>|%\x00-\x1f\x7f]')
MAX_NAME = 200  # bytes; file systems take 255


def file_name(text: str) -> str:
    """A single, harmless path component for an id: the same text when it is one already.

    Separators (``/``, ``\\``), characters Windows or a shell would trip over, ``%`` itself,
    controls and everything :func:`terminal` would escape are percent-encoded (UTF-8, a lone
    surrogate as its three bytes), as is a leading ``.`` (no ``..``, no hidden files). So two
    ids never share a name, and ``out_dir / file_name(id)`` is always inside ``out_dir``. A
    name longer than ``MAX_NAME`` bytes is cut and ends with a hash of the whole id.
    """
    def unsafe(ch: str) -> bool:
        return bool(_NAME_UNSAFE.fullmatch(ch)) or not ch.isprintable() and ch != " " or (
            ch.isspace() and ch != " ")

    def encode(ch: str) -> str:
        return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))

    out = "".join(encode(ch) if unsafe(ch) else ch for ch in text)
    if not out:
        return "%00"
    if out[0] == ".":  # no "." or "..", no hidden files
        out = "%2E" + out[1:]
    if out[-1] in ". ":  # Windows drops a trailing dot or space: the name would change on the way
        out = out[:-1] + encode(out[-1])
    raw = out.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_NAME:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        out = raw[:MAX_NAME - 17].decode("utf-8", "ignore") + "-" + digest
    return out
