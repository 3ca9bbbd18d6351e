"""Query parameters shared by the listing endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from ..domain.ids import MAX_ID

MAX_PAGE = 1000  # the services' own cap

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1..{MAX_PAGE}")]

# Ids are 64-bit signed integers in both stores; anything outside is refused as 422, not a 500.
ContactId = Annotated[int, Path(ge=1, le=MAX_ID, description="A contact's id")]
OptionalContactId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this contact's")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip")]
