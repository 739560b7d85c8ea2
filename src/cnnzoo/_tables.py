"""Plain-text tables: columns padded to their widest cell, numbers aligned right."""

from __future__ import annotations


def text_table(header, rows, numeric=()) -> str:
    """The lines of a table of strings, ``header`` first; the columns whose index is in
    ``numeric`` align right, the others left; two spaces between columns."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) if i in numeric else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(line, widths))).rstrip()
        for line in table)
