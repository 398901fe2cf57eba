"""Writes the corpus's .docx and .pdf PRDs (committed beside this script): `python tests/tasks/prds/make_binary.py`.

The .docx is written with python-docx (real heading and list styles, a table); the .pdf by hand, one text line per
`Tj`, the way simple PDF exporters write text, so that no PDF writer is needed.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

DOCX = [
    ("Title", "Warehouse returns desk"),
    (
        "Normal",
        "Customers send back about 400 parcels a day. The returns desk records them in a spreadsheet and "
        "refunds are late. This document describes the returns module for the warehouse system.",
    ),
    ("Heading 1", "Background"),
    ("Normal", "Refunds take eleven days on average; the target is two."),
    ("Heading 1", "Stakeholders"),
    ("List Bullet", "Returns clerks at the desk"),
    ("List Bullet", "Customer service, who answer 'where is my refund'"),
    ("Heading 1", "Requirements"),
    ("List Number", "RT-1 Clerks scan the return label and the system finds the order and its lines."),
    ("List Number", "RT-2 Clerks grade each returned item as resellable, damaged or missing. Depends on RT-1."),
    ("List Number", "RT-3 Resellable items go back into stock at their bin location. Depends on RT-2."),
    (
        "List Number",
        "RT-4 A refund is triggered in the payment provider once all items of a return are graded. Depends on RT-2.",
    ),
    ("List Number", "RT-5 Customer service sees the status of a return by order number. Depends on RT-1."),
    ("List Number", "RT-6 A daily report of returns by reason code. Depends on RT-2."),
    ("Heading 1", "Priorities"),
    (
        "TABLE",
        [
            ["Requirement", "Priority"],
            ["RT-1", "P0"],
            ["RT-2", "P0"],
            ["RT-3", "P1"],
            ["RT-4", "P0"],
            ["RT-5", "P1"],
            ["RT-6", "P2"],
        ],
    ),
    ("Heading 1", "Out of scope"),
    ("List Bullet", "Exchanges for a different size"),
]

PDF_LINES = [
    "KIOSK ORDERING - requirements brief",
    "",
    "OVERVIEW",
    "The canteen wants touch-screen kiosks so that queues at the till get shorter at lunch.",
    "",
    "WHAT WE NEED",
    "1. Show the day's menu with photos, prices and allergens.",
    "2. Let guests build an order and change quantities before paying. (needs 1)",
    "3. Take card and badge payments at the kiosk. (needs 2)",
    "4. Print a ticket with an order number and send the order to the kitchen screen. (needs 3)",
    "5. Kitchen staff mark orders ready; the number shows on the pick-up display. (needs 4)",
    "6. Daily sales export for the finance team. (needs 3)",
    "",
    "PRIORITY",
    "Critical: 1, 2, 3, 4",
    "Medium: 5",
    "Low: 6",
    "",
    "OPEN QUESTIONS",
    "Do we need a second language on the screens?",
]


def write_docx(path: Path) -> None:
    from docx import Document

    doc = Document()
    for style, content in DOCX:
        if style == "TABLE":
            rows = content
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        else:
            doc.add_paragraph(str(content), style=style)
    doc.core_properties.author = "Taskmaster tests"
    doc.save(str(path))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path) -> None:
    ops = ["BT", "/F1 11 Tf", "14 TL", "50 800 Td"]
    for line in PDF_LINES:
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


if __name__ == "__main__":
    write_docx(HERE / "warehouse-returns.docx")
    write_pdf(HERE / "kiosk-ordering.pdf")
