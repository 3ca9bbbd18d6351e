"""Query parameters shared by the listing endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_PAGE = 1000  # the services' own cap

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1..{MAX_PAGE}")]
Offset = Annotated[int, Query(ge=0, description="Items to skip")]
