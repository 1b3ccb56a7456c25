"""Spreadsheet files: XLSX (openpyxl) and CSV (UTF-8 with a BOM, so that spreadsheet programs
read Chinese right), written from plain headers and rows, and read back for imports."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote

from flask import Response

# openpyxl (about 9 MB per process) is imported where a workbook is written or read: only the
# exports and imports need it, so a worker that serves neither never loads it.

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIME = "text/csv; charset=utf-8"


@dataclass
class Sheet:
    title: str
    headers: list[str]
    rows: list[list]


# A text starting with one of these is a formula to a spreadsheet program that opens a CSV file
# (OWASP: CSV injection): a name like =HYPERLINK("http://…"&C3) would send another row away.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if isinstance(value, datetime):
        # openpyxl cannot store time zones (values are local already); to the second, as the pages show.
        return value.replace(tzinfo=None, microsecond=0)
    return value


def csv_text(value: str) -> str:
    """Text for a CSV cell that no spreadsheet program runs as a formula: one starting with
    = + - @, a tab or a carriage return is given a leading apostrophe, which the programs show as
    text and do not display."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def xlsx_bytes(sheets: list[Sheet]) -> bytes:
    """Return an XLSX workbook with one worksheet per sheet: a bold header row, then the rows."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        ws = wb.create_sheet(title=sheet.title[:31] or "Sheet")
        ws.append([str(h) for h in sheet.headers])
        for c in ws[1]:
            c.font = Font(bold=True)
        for row in sheet.rows:
            ws.append([_cell(v) for v in row])
            if any(isinstance(v, str) and v.startswith("=") for v in row):
                # openpyxl stores text starting with "=" as a formula: keep it text, as typed.
                for c in ws[ws.max_row]:
                    if c.data_type == "f":
                        c.data_type = "s"
        for i, header in enumerate(sheet.headers, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(str(header)) * 2 + 4))
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(headers: list[str], rows: list[list]) -> bytes:
    """Return CSV text as UTF-8 with a byte-order mark."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([str(h) for h in headers])
    for row in rows:
        writer.writerow(["" if v is None else v.isoformat(sep=" ", timespec="seconds") if isinstance(v, datetime)
                         else csv_text(v) if isinstance(v, str) else v for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _download(body: bytes, mimetype: str, filename: str) -> Response:
    ascii_name = filename.encode("ascii", "ignore").decode() or "download"
    return Response(
        body,
        content_type=mimetype,  # as given: CSV's names its charset once
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store",
        },
    )


def xlsx_response(filename: str, sheets: list[Sheet]) -> Response:
    return _download(xlsx_bytes(sheets), XLSX_MIME, filename)


def csv_response(filename: str, headers: list[str], rows: list[list]) -> Response:
    return _download(csv_bytes(headers, rows), CSV_MIME, filename)


def table_response(fmt: str, filename: str, title: str, headers: list[str], rows: list[list]) -> Response:
    """Return one table as ``fmt`` ("xlsx" or "csv"); ``filename`` has no extension."""
    if fmt == "csv":
        return csv_response(f"{filename}.csv", headers, rows)
    return xlsx_response(f"{filename}.xlsx", [Sheet(title, headers, rows)])


class UnreadableFile(ValueError):
    """The upload is neither a readable XLSX nor a UTF-8/GB18030 CSV."""


def read_rows(data: bytes, filename: str) -> list[list[str]]:
    """Return the rows of an uploaded XLSX (first sheet) or CSV as lists of stripped strings."""
    name = (filename or "").lower()
    if name.endswith(".xlsx") or data[:2] == b"PK":
        from openpyxl import load_workbook

        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise UnreadableFile(str(exc)) from exc
        ws = wb.worksheets[0]
        rows = [[_text(v) for v in row] for row in ws.iter_rows(values_only=True)]
        wb.close()
        return rows
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnreadableFile("not UTF-8 or GB18030 text")
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value).strip()
