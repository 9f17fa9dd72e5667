"""The work summary (:class:`services.reporting.kpis.document.Document`) as a Word file (.docx),
through python-docx: the title as the document title, the sections as headings, paragraphs as
they are, each table with a header row in the "Table Grid" style. Chinese text is set in 宋体
(SimSun) for East Asian script, so the file reads alike in Word and WPS."""

from __future__ import annotations

import io

from docx import Document as new_docx
from docx.oxml.ns import qn
from docx.shared import Pt

from services.reporting.kpis.document import Document

#: The media type of a .docx file.
DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

#: East Asian font of every style the document uses.
EAST_ASIAN_FONT = "宋体"


def _east_asian(style) -> None:
    rpr = style.element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), EAST_ASIAN_FONT)


def to_docx(doc: Document) -> bytes:
    """``doc`` as the bytes of a .docx file."""
    out = new_docx()
    out.core_properties.title = doc.title
    out.styles["Normal"].font.size = Pt(11)
    for name in ("Normal", "Title", "Heading 1", "Heading 2"):
        _east_asian(out.styles[name])
    out.add_heading(doc.title, level=0)
    for s in doc.sections:
        out.add_heading(s.heading, level=s.level - 1)
        for p in s.paragraphs:
            out.add_paragraph(p)
        if s.table is not None:
            t = out.add_table(rows=1 + len(s.table.rows), cols=len(s.table.header))
            t.style = "Table Grid"
            for j, text in enumerate(s.table.header):
                cell = t.cell(0, j)
                cell.text = text
                for run in cell.paragraphs[0].runs:
                    run.bold = True
            for i, row in enumerate(s.table.rows, start=1):
                for j, text in enumerate(row):
                    t.cell(i, j).text = text
    buf = io.BytesIO()
    out.save(buf)
    return buf.getvalue()
