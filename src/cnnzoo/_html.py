"""HTML tables: for the report, and for the results that a notebook shows as tables."""

from __future__ import annotations

import html


def escape(value) -> str:
    return html.escape(str(value), quote=True)


# A notebook has no style sheet of ours: the cells carry their alignment themselves.
INLINE = {"num": "text-align: right; font-variant-numeric: tabular-nums",
          "name": "text-align: left; font-family: monospace; white-space: pre"}


def html_table(header, rows, numeric=(), names: bool = False, caption: str = "",
               inline: bool = False) -> str:
    """An HTML table; columns whose index is in ``numeric`` align right, and with ``names`` the
    first column is set in a fixed-width font that keeps its indentation. ``inline`` writes
    that as each cell's style (for a notebook) instead of the classes ``num`` and ``name`` (for
    a page with its own style sheet)."""
    def attributes(kind: str | None) -> str:
        if kind is None:
            return ""
        return f' style="{INLINE[kind]}"' if inline else f' class="{kind}"'

    head = "".join(f"<th{attributes('num' if i in numeric else None)}>{escape(h)}</th>"
                   for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            kind = "num" if index in numeric else "name" if names and index == 0 else None
            cells.append(f"<td{attributes(kind)}>{escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption_html = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f"<table>{caption_html}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")
