"""API models shared by every resource: the error body, list pages, and the strict base model."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")


class StrictModel(BaseModel):
    """Request models reject unknown fields so a typo is an error, not a silently ignored key,
    and NUL characters anywhere (PostgreSQL cannot store them in text)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong and what to do next.")
    request_id: str = Field(description="Quote this when reporting a problem.")
    details: object | None = Field(None, description="Structured context, e.g. field errors.")


class PageResponse(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page.")


class ListQuery(StrictModel):
    cursor: str | None = Field(
        None, max_length=512, description="Opaque cursor from a previous page."
    )
    limit: int = Field(50, ge=1, le=1000, description="Page size.")
