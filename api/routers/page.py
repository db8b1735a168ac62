"""The page at GET /: a map, a table, a city panel and changes, drawn by its own
script from the API (no CDN, no tile server, no web fonts). Its files are package
data in api/page/, served under /page/."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

PAGE_DIR = Path(__file__).resolve().parent.parent / "page"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(PAGE_DIR / "index.html", media_type="text/html; charset=utf-8")
