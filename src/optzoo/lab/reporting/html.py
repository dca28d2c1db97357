"""A self-contained HTML report: one page, inline CSS, pictures embedded as base64 data URIs.

Nothing in the page loads from anywhere else, so it can be mailed, archived or
opened offline.

Example:
    >>> r = Report("optzoo", "a test")
    >>> s = r.section("Numbers", "Two of them.")
    >>> s.table(["a", "b"], [["1", "2"]])
    >>> "<table" in r.html() and "http" not in r.html().split("<body")[1]
    True
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Report", "Section", "escape"]

CSS = """
:root { --ink: #1f2430; --muted: #5b6475; --line: #e3e6ec; --accent: #2f6fde; --soft: #f5f7fb;
        --good: #1b7f4b; --warn: #a15c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
header { background: linear-gradient(135deg, #1f3b73, #2f6fde); color: #fff; padding: 36px 0 28px; }
header h1 { margin: 0 0 6px; font-size: 34px; letter-spacing: -0.5px; }
header p { margin: 0; opacity: .9; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 28px; }
nav { background: var(--soft); border-bottom: 1px solid var(--line); padding: 10px 0; font-size: 14px;
      position: sticky; top: 0; z-index: 2; }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
section { padding: 26px 0 8px; border-bottom: 1px solid var(--line); }
h2 { font-size: 25px; margin: 0 0 6px; }
h3 { font-size: 18px; margin: 22px 0 6px; }
p { margin: 8px 0 12px; max-width: 900px; }
.lead { font-size: 17px; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr)); gap: 14px; margin: 18px 0 6px; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.card .k { font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; }
.card .v { font-size: 22px; font-weight: 650; margin: 2px 0; }
.card .d { font-size: 14px; color: var(--muted); }
figure { margin: 14px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
figcaption { font-size: 14px; color: var(--muted); margin-top: 6px; max-width: 900px; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 18px; align-items: start; }
table { border-collapse: collapse; margin: 10px 0 6px; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: var(--soft); font-weight: 600; text-align: center; white-space: normal; max-width: 150px;
     vertical-align: bottom; }
td:first-child, th:first-child, td.t { text-align: left; }
tr:nth-child(even) td { background: #fbfcfe; }
tr.top td { background: #eef8f1; }
.tablewrap { overflow-x: auto; }
.tcap { font-size: 14px; color: var(--muted); margin: 4px 0 14px; max-width: 900px; }
.note { background: #fff8e6; border-left: 4px solid #e0a100; padding: 10px 14px; border-radius: 6px;
        margin: 12px 0; font-size: 15px; max-width: 900px; }
.course { background: #eef4ff; border-left: 4px solid var(--accent); padding: 10px 14px; border-radius: 6px;
          margin: 12px 0; font-size: 15px; max-width: 900px; }
.course b:first-child { color: var(--accent); }
ul.find { padding-left: 20px; max-width: 940px; }
ul.find li { margin: 5px 0; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13.5px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px;
      overflow-x: auto; }
footer { color: var(--muted); font-size: 13px; padding: 20px 0 40px; }
"""


def escape(text: str) -> str:
    """HTML-escape ``text``, then allow **bold** and `code` in the Markdown way."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def data_uri(source: str | Path | bytes, mime: str | None = None) -> str:
    """A ``data:`` URI of a picture file (or of raw bytes with ``mime``)."""
    if isinstance(source, bytes):
        payload, kind = source, mime or "image/png"
    else:
        path = Path(source)
        payload = path.read_bytes()
        kind = mime or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(payload).decode('ascii')}"


@dataclass
class Section:
    """One titled part of the report; its methods append blocks in order."""

    anchor: str
    title: str
    short: str = ""
    blocks: list[str] = field(default_factory=list)

    def paragraph(self, text: str, lead: bool = False) -> None:
        """A paragraph (``**bold**`` and `` `code` `` allowed)."""
        self.blocks.append(f'<p class="lead">{escape(text)}</p>' if lead else f"<p>{escape(text)}</p>")

    def heading(self, text: str) -> None:
        self.blocks.append(f"<h3>{escape(text)}</h3>")

    def note(self, text: str) -> None:
        """A highlighted remark (e.g. a part of the lab that could not run)."""
        self.blocks.append(f'<div class="note">{escape(text)}</div>')

    def course(self, text: str) -> None:
        """What the course notes say, next to what was measured."""
        self.blocks.append(f'<div class="course"><b>Course notes:</b> {escape(text)}</div>')

    def bullets(self, items: list[str]) -> None:
        self.blocks.append('<ul class="find">' + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")

    def cards(self, items: list[tuple[str, str, str]]) -> None:
        """Key numbers as cards: (what, value, detail)."""
        body = "".join(
            f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div>'
            f'<div class="d">{escape(d)}</div></div>' for k, v, d in items
        )
        self.blocks.append(f'<div class="cards">{body}</div>')

    def image(self, source: str | Path | bytes, caption: str = "", alt: str = "", width: int | None = None) -> None:
        """A picture, embedded; ``width`` caps its displayed width in pixels."""
        self.blocks.append(_figure(source, caption, alt, width))

    def images(self, items: list[tuple[str | Path, str]]) -> None:
        """Pictures side by side (wrapping on narrow screens): (file, caption) pairs."""
        self.blocks.append('<div class="row">' + "".join(_figure(s, c, c) for s, c in items) + "</div>")

    def table(
        self, headers: list[str], rows: list[list[str]], caption: str = "", highlight_first: bool = False
    ) -> None:
        """A table of strings; ``highlight_first`` tints the first row (the winner)."""
        head = "".join(f"<th>{escape(h)}</th>" for h in headers)
        top = ' class="top"'
        body = "".join(
            f"<tr{top if highlight_first and i == 0 else ''}>" + "".join(_cell(c) for c in row) + "</tr>"
            for i, row in enumerate(rows)
        )
        block = f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
        if caption:
            block += f'<div class="tcap">{escape(caption)}</div>'
        self.blocks.append(block)

    def code(self, text: str) -> None:
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")


def _cell(text: str) -> str:
    """A table cell: numbers right-aligned, words left-aligned."""
    numeric = bool(re.match(r"^[-+−–]?\s*[0-9.]", text)) or text in ("–", "")
    return f"<td>{escape(text)}</td>" if numeric else f'<td class="t">{escape(text)}</td>'


def _figure(source: str | Path | bytes, caption: str, alt: str, width: int | None = None) -> str:
    style = f' style="max-width:{width}px"' if width else ""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(source)}" alt="{html.escape(alt or caption)}"{style}>{cap}</figure>'


@dataclass
class Report:
    """The whole page: a header, a table of contents and sections."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    footer: str = ""

    def section(self, title: str, intro: str = "", anchor: str | None = None, short: str = "") -> Section:
        """Start a new section (with an optional lead paragraph) and return it; ``short`` names it in the menu."""
        anchor = anchor or re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or f"s{len(self.sections)}"
        section = Section(anchor, title, short)
        if intro:
            section.paragraph(intro, lead=True)
        self.sections.append(section)
        return section

    def html(self) -> str:
        """The page as one string."""
        nav = "".join(f'<a href="#{s.anchor}">{escape(s.short or s.title)}</a>' for s in self.sections)
        body = "".join(
            f'<section id="{s.anchor}"><div class="wrap"><h2>{escape(s.title)}</h2>{"".join(s.blocks)}</div></section>'
            for s in self.sections
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
            f'<header><div class="wrap"><h1>{escape(self.title)}</h1><p>{escape(self.subtitle)}</p></div></header>'
            f'<nav><div class="wrap">{nav}</div></nav>{body}'
            f'<footer><div class="wrap">{escape(self.footer)}</div></footer></body></html>\n'
        )

    def write(self, path: str | Path) -> Path:
        """Write the page (creating its folder)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path
