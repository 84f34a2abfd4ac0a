"""Request and response bodies (pydantic), which also make the OpenAPI schema at `/openapi.json`.

`input`, `query` and `documents` are accepted as raw JSON and parsed by `items.py`, which gives
errors that name the item ("item 3: image 0: invalid base64 ..."); their OpenAPI schema is spelt out
here so clients and schema-driven fuzzers see the real shape.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

_STRING_LIST = {"type": "array", "items": {"type": "string"}}
_URL = {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"url": {"type": "string"}},
                                         "required": ["url"]}]}
_VIDEO_URL = {"anyOf": [{"type": "string"}, _STRING_LIST, {
    "type": "object", "properties": {"url": {"anyOf": [{"type": "string"}, _STRING_LIST]}}, "required": ["url"]}]}
PARTS_SCHEMA: dict[str, Any] = {"type": "array", "description": "OpenAI-style content parts of ONE item", "items": {
    "anyOf": [
        {"type": "object", "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
         "required": ["type", "text"]},
        {"type": "object", "properties": {"type": {"const": "image_url"}, "image_url": _URL},
         "required": ["type", "image_url"]},
        {"type": "object", "properties": {"type": {"const": "video_url"}, "video_url": _VIDEO_URL},
         "required": ["type", "video_url"]},
    ]}}
ITEM_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1, "pattern": r"\S", "description": "text (not only whitespace)"},
        {"type": "object", "additionalProperties": False, "description": "one item; media as data URIs",
         "properties": {"text": {"type": "string"}, "image": {"type": "string"}, "images": _STRING_LIST,
                        "video": {"anyOf": [{"type": "string"}, _STRING_LIST]}, "instruction": {"type": "string"}}},
        PARTS_SCHEMA,
    ]
}
# vLLM's chat-style embedding request (`EmbeddingChatRequest.messages`, see items.parse_messages): ONE item per
# conversation; a list of conversations is the batched form mteb's OpenAIAPIEncodeWrapper sends.
CONVERSATION_SCHEMA: dict[str, Any] = {
    "type": "array", "minItems": 1,
    "description": "an optional system message (the instruction) and one user message (the item: a string or "
                   "text / image_url / video_url parts)",
    "items": {"type": "object", "additionalProperties": False, "required": ["role", "content"], "properties": {
        "role": {"enum": ["system", "user"]},
        "content": {"anyOf": [{"type": "string"}, PARTS_SCHEMA]}}}}
MESSAGES_SCHEMA: dict[str, Any] = {
    "description": "vLLM's chat-style form: one conversation (ONE embedding) or a list of conversations (one "
                   "embedding each)",
    "anyOf": [CONVERSATION_SCHEMA, {"type": "array", "minItems": 1, "items": CONVERSATION_SCHEMA}]}
INPUT_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "string", "minLength": 1, "pattern": r"\S"},
                                          {"type": "array", "items": ITEM_SCHEMA, "minItems": 1}]}

RawInput = Annotated[Any, WithJsonSchema(INPUT_SCHEMA)]
RawItem = Annotated[Any, WithJsonSchema(ITEM_SCHEMA)]
RawItems = Annotated[Any, WithJsonSchema({"type": "array", "items": ITEM_SCHEMA, "minItems": 1})]
RawMessages = Annotated[Any, WithJsonSchema(MESSAGES_SCHEMA)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingRequest(_Strict):
    """Either `input` (a batch: one embedding per item) or `messages` (vLLM's chat-style form: one embedding)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["input"]}, {"required": ["messages"]}]})

    input: RawInput = Field(default=None,
                            description="a string, a list of strings, or a list of items (each gives one embedding)")
    messages: RawMessages = Field(default=None, description="vLLM's chat-style request instead of `input`: "
                                                            "system = instruction, user = the item; one embedding per conversation")
    model: str | None = None
    encoding_format: Literal["float", "base64", "int8", "uint8", "binary", "ubinary"] = Field(
        default="float", description="float or base64 (OpenAI's); int8/uint8 (server started with --ranges) or "
                                     "binary/ubinary (packed sign bits): JSON integer lists, see serving/formats.py")
    dimensions: int | None = Field(default=None, ge=1, description="truncate to this many dimensions and re-normalise")
    input_type: Literal["query", "document"] | None = Field(
        default=None, description="apply the model's named prompt for queries or documents")
    user: str | None = None


class SearchRequest(_Strict):
    query: RawItem
    top_k: int = Field(default=10, ge=1)
    model: str | None = None
    input_type: Literal["query", "document"] | None = Field(
        default="query", description="named prompt for the query (default: the model's query prompt)")


class RerankRequest(_Strict):
    query: RawItem
    documents: RawItems
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    model: str | None = None


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | list[int] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    text_tokens: int
    visual_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class SearchHit(BaseModel):
    rank: int
    id: str
    score: float
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[SearchHit]
    model: str
    usage: Usage


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: Any | None = None


class RerankResponse(BaseModel):
    object: Literal["list"] = "list"
    results: list[RerankResult]
    model: str


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error the server sends: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


ERROR_STATUSES = {
    400: "invalid request (bad JSON, a bad item; the message names it)",
    401: "missing or invalid API key",
    404: "unknown model, or the endpoint's index / re-ranker is not loaded",
    405: "method not allowed (see the Allow header)",
    408: "request body not received in time",
    413: "request body over the size limit",
    429: "server busy: too many requests in flight (see Retry-After)",
    500: "internal server error",
    504: "request timed out",
}


def truthful_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's automatic 422 (validation errors are answered 400 with the error schema here)."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def error_responses(*statuses: int, only: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses an endpoint sends (all of them for POST endpoints)."""
    chosen = statuses if only else sorted(set(ERROR_STATUSES) | set(statuses))
    return {status: {"model": ErrorResponse, "description": ERROR_STATUSES[status]} for status in chosen}
