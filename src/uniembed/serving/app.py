"""`create_app`: the FastAPI application serving one `Embedder` (and optionally an index and a re-ranker).

Endpoints: `POST /v1/embeddings` (OpenAI-compatible, mixed-modality items), `POST /v1/search`,
`POST /v1/rerank`, `GET /v1/models`, `GET /health`, `GET /metrics`.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Sequence, TypeVar

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConfigError, InputError
from ..inputs import Item
from ..losses.matryoshka import truncate
from ..models.pooling import check_truncate_dim
from ..version import __version__
from .batcher import DynamicBatcher
from .config import ServerConfig
from .errors import ApiError, bad_input, error_response
from .formats import check_format, format_vectors, load_ranges
from .guards import GuardMiddleware
from .items import parse_item, parse_items, parse_message_batch, split_input
from .json_body import OffLoopJSONRoute
from .media_policy import MediaPolicy
from .metrics import ServerMetrics
from .rerank import Reranker, ranked
from .runner import BatchOutput, ModelRunner
from .schemas import EmbeddingRequest, error_responses, truthful_openapi, EmbeddingResponse, RerankRequest, RerankResponse, SearchRequest, SearchResponse
from .search import SearchService
from .tokens import add_token_routes, token_embeddings

T = TypeVar("T")


@dataclass
class ServerState:
    """Everything the endpoints share; reachable as `app.state.uniembed` (tests count `runner.calls`)."""

    model: Any
    config: ServerConfig
    runner: ModelRunner
    batcher: DynamicBatcher
    policy: MediaPolicy
    metrics: ServerMetrics
    search: SearchService | None
    reranker: Reranker | None
    started: int
    ranges: np.ndarray | None = None  # per-dimension [min, max] of the int8/uint8 encoding_format (--ranges)


def create_app(model: Any, config: ServerConfig | None = None, *, search: SearchService | None = None,
               reranker: Reranker | None = None, runner: ModelRunner | None = None) -> FastAPI:
    """Build the app; `model` is an `Embedder` (anything with its encode-side API works)."""
    config = config or ServerConfig()
    runner = runner or ModelRunner(model)
    metrics = ServerMetrics()
    embedding_config = model.config
    text_cap = config.max_text_chars or max(65536, 32 * int(embedding_config.max_length))
    policy = MediaPolicy(dataclasses.replace(model.limits, max_redirects=config.max_redirects),
                         config.allow_local_files, config.allow_remote_media, config.max_media_bytes,
                         config.remote_timeout_s, embedding_config.frames, remote_allow=config.remote_allow,
                         max_request_pixels=config.max_request_pixels, max_text_chars=text_cap)
    batcher = DynamicBatcher(runner.encode, runner.cost, runner.dimension, max_batch_tokens=config.max_batch_tokens,
                             max_batch_items=config.max_batch_items, max_wait_s=config.max_wait_ms / 1000.0,
                             merge_requests=config.batching, observer=metrics.observe_batch,
                             prepare=runner.prepare, long_item_tokens=config.long_item_tokens)
    check_truncate_dim(config.dimensions, runner.dimension, name="--dimensions",
                       trained=getattr(embedding_config, "matryoshka_dims", None))
    ranges = load_ranges(config.ranges) if config.ranges is not None else None  # int8/uint8 encoding_format
    if ranges is not None and ranges.shape[1] > runner.dimension:
        raise ConfigError(f"--ranges '{config.ranges}' is {ranges.shape[1]}-d but the model gives "
                          f"{runner.dimension} dimensions; pass ranges calibrated on this model's vectors")
    state = ServerState(model, config, runner, batcher, policy, metrics, search, reranker, int(time.time()), ranges)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await batcher.stop()
        batcher.close()

    app = FastAPI(title="uniembed", version=__version__, lifespan=lifespan,
                  description="Universal multimodal embeddings: OpenAI-compatible /v1/embeddings with "
                              "mixed-modality items.")
    app.state.uniembed = state
    app.router.route_class = OffLoopJSONRoute  # large JSON bodies are parsed in a thread, not on the loop
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = truthful_openapi(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(GuardMiddleware, config=config, metrics=metrics)
    _install_error_handlers(app)
    _add_routes(app, state)
    return app


# ---- errors --------------------------------------------------------------------------------------------
def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(InputError)
    async def input_error(_: Request, exc: InputError) -> JSONResponse:
        return bad_input(exc).response()

    @app.exception_handler(ConfigError)
    async def config_error(_: Request, exc: ConfigError) -> JSONResponse:
        return bad_input(exc).response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error_response(exc.status_code, str(exc.detail), type=kind, code=f"http_{exc.status_code}",
                              headers=getattr(exc, "headers", None))  # keeps Allow on 405

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal server error ({type(exc).__name__})", type="server_error",
                              code="internal_error")


def _validation_response(errors: Sequence[dict[str, Any]]) -> JSONResponse:
    if not errors:
        return error_response(400, "invalid request body", code="invalid_request")
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        param = None
        message = f"request body is not valid JSON ({first.get('ctx', {}).get('error', first.get('msg'))})"
    elif first.get("type") == "extra_forbidden":
        message = f"unknown field '{param}'"
    elif first.get("type") == "missing":
        message = f"missing required field '{param}'"
    else:
        message = f"{param or 'body'}: {first.get('msg', 'invalid value')}"
    return error_response(400, message, param=param, code="invalid_request")


# ---- routes --------------------------------------------------------------------------------------------
def _add_routes(app: FastAPI, state: ServerState) -> None:
    trained_dims = getattr(state.model.config, "matryoshka_dims", None)

    def cut(vectors: np.ndarray, width: int | None) -> np.ndarray:
        """The cut Embedder.encode(truncate_dim=) makes, on the batched vectors (None: no cut)."""
        if width is None:
            return vectors
        return truncate(torch.from_numpy(vectors), width, bool(getattr(state.model.config, "normalize", True))).numpy()
    config = state.config

    def check_model(name: str | None) -> None:
        if name not in (None, "", config.served_model_name):
            raise ApiError(404, f"model '{name}' is not served here; this server serves '{config.served_model_name}'",
                           param="model", code="model_not_found")

    async def with_timeout(work: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(work, config.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"request timed out after {config.request_timeout_s:g} s", type="timeout_error",
                           code="timeout") from None

    async def parse(raw: Any, field: str, single: bool = False) -> list[Item]:
        try:
            with state.batcher.expecting():
                return await _parse(raw, field, single)
        except InputError as exc:
            raise bad_input(exc, field) from None

    async def _parse(raw: Any, field: str, single: bool) -> list[Item]:
        if field == "messages":  # vLLM's chat-style request: one item per conversation
            return await asyncio.to_thread(parse_message_batch, raw, state.policy, config.max_items_per_request)
        if single:
            return [await asyncio.to_thread(parse_item, raw, state.policy, None)]
        values = split_input(raw, config.max_items_per_request)  # cheap checks before decoding anything
        if all(isinstance(value, str) for value in values):  # plain texts: only cut, no media to check or fetch;
            return parse_items(raw, state.policy, config.max_items_per_request)  # a thread hop costs more (26.6)
        return await asyncio.to_thread(parse_items, raw, state.policy, config.max_items_per_request)

    async def embed(items: list[Item], input_type: str | None, field: str) -> BatchOutput:
        resolved = state.runner.resolve_instruction(items, input_type)
        try:
            output = await state.batcher.submit(resolved)
        except (InputError, ConfigError) as exc:
            raise bad_input(exc, field) from None
        for item in items:
            state.metrics.items.labels(item.modality_name).inc()
        state.metrics.tokens.labels("text").inc(int(output.text_tokens.sum()))
        state.metrics.tokens.labels("visual").inc(int(output.visual_tokens.sum()))
        return output

    @app.post("/v1/embeddings", response_model=EmbeddingResponse, responses=error_responses(404))
    async def embeddings(body: EmbeddingRequest) -> JSONResponse:
        """Embed each item of `input` (text, images, video or any combination) into one vector, or the one
        item of vLLM's chat-style `messages` (system = instruction, user = the item)."""
        check_model(body.model)
        try:
            check_truncate_dim(body.dimensions, state.runner.dimension, name="dimensions", trained=trained_dims)
        except ConfigError as exc:
            raise ApiError(400, str(exc), param="dimensions", code="invalid_dimensions") from None

        width = body.dimensions or config.dimensions or state.runner.dimension
        try:
            check_format(body.encoding_format, width, state.ranges)
        except ConfigError as exc:
            raise ApiError(400, str(exc), param="encoding_format", code="invalid_encoding_format") from None
        field = request_form(body)

        async def work() -> BatchOutput:
            items = await parse(body.messages if field == "messages" else body.input, field)
            return await embed(items, body.input_type, field)

        output = await with_timeout(work())
        vectors = cut(output.vectors, body.dimensions if body.dimensions is not None else config.dimensions)
        data = [{"object": "embedding", "index": i, "embedding": embedding}
                for i, embedding in enumerate(format_vectors(vectors, body.encoding_format, state.ranges))]
        return JSONResponse({"object": "list", "data": data, "model": config.served_model_name,
                             "usage": usage(output)})

    @app.post("/v1/search", response_model=SearchResponse, responses=error_responses(404))
    async def search(body: SearchRequest) -> JSONResponse:
        """Embed `query` and return the `top_k` nearest ids of the loaded index with their stored metadata."""
        check_model(body.model)
        if state.search is None:
            raise ApiError(404, "no index is loaded on this server; start it with --index DIR", param=None,
                           code="index_not_loaded")
        if body.top_k > config.max_top_k:
            raise ApiError(400, f"top_k={body.top_k} is over the limit of {config.max_top_k}", param="top_k",
                           code="invalid_top_k")
        service = state.search

        async def work() -> tuple[list[dict[str, Any]], BatchOutput]:
            items = await parse(body.query, "query", single=True)
            if service.multi_vector:  # a late-interaction index: the query's token embeddings (serving/tokens.py)
                tokens, output = await token_embeddings(state, items, body.input_type, "query")
                return await asyncio.to_thread(service.search, tokens[0], body.top_k), output
            output = await embed(items, body.input_type, "query")
            hits = await asyncio.to_thread(service.search, cut(output.vectors, config.dimensions)[0], body.top_k)
            return hits, output

        hits, output = await with_timeout(work())
        return JSONResponse({"object": "list", "data": hits, "model": config.served_model_name,
                             "usage": usage(output)})

    @app.post("/v1/rerank", response_model=RerankResponse, responses=error_responses(404))
    async def rerank(body: RerankRequest) -> JSONResponse:
        """Re-rank `documents` against `query` with the configured re-ranker (404 when none is)."""
        if state.reranker is None:
            raise ApiError(404, "no re-ranker is configured on this server; /v1/rerank is unavailable",
                           code="reranker_not_configured")
        check_model(body.model)
        reranker = state.reranker

        async def work() -> list[tuple[int, float]]:
            query = (await parse(body.query, "query", single=True))[0]
            documents = await parse(body.documents, "documents")
            scores = await asyncio.to_thread(reranker.score, query, documents)
            if len(scores) != len(documents):
                raise RuntimeError(f"re-ranker returned {len(scores)} scores for {len(documents)} documents")
            return ranked(scores, body.top_n)

        order = await with_timeout(work())
        raw_documents = body.documents if isinstance(body.documents, list) else [body.documents]
        results = [{"index": i, "relevance_score": score,
                    **({"document": raw_documents[i]} if body.return_documents else {})} for i, score in order]
        return JSONResponse({"object": "list", "results": results, "model": config.served_model_name})

    @app.get("/v1/models", responses=error_responses(401, 405, 500, only=True))
    async def models() -> dict[str, Any]:
        """The served model: id, embedding dimension, accepted modalities, named prompts and limits."""
        prompts = sorted((getattr(state.model.config, "prompts", {}) or {}).keys())
        return {"object": "list", "data": [{
            "id": config.served_model_name, "object": "model", "created": state.started, "owned_by": "uniembed",
            "dimension": state.runner.dimension, "modalities": list(state.model.modalities), "prompts": prompts,
            "max_items_per_request": config.max_items_per_request,
            "index_size": len(state.search) if state.search is not None else None,
            "reranker": state.reranker is not None,
        }]}

    @app.get("/health", responses=error_responses(405, 500, only=True))
    async def health() -> dict[str, Any]:
        """Liveness and readiness for load balancers: 200 while the server accepts requests."""
        return {"status": "ok", "model": config.served_model_name, "dimension": state.runner.dimension,
                "queued_items": state.batcher.queued_items}

    @app.get("/metrics", response_class=PlainTextResponse, responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}},
              "description": "Prometheus text exposition format"}, **error_responses(405, 500, only=True)})
    async def metrics() -> Response:
        """Prometheus metrics: requests, latency, batch sizes, tokens, queue depth."""
        state.metrics.queue_items.set(state.batcher.queued_items)
        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    add_token_routes(app, state, parse, check_model, with_timeout, usage)  # POST /pooling (token_embed): serving/tokens.py


# ---- request helpers -----------------------------------------------------------------------------------
def request_form(body: EmbeddingRequest) -> str:
    """"input" (a batch) or "messages" (vLLM's chat-style request, one item); exactly one must be sent."""
    sent = [name for name in ("input", "messages") if name in body.model_fields_set]
    if len(sent) == 2:
        raise ApiError(400, "send either 'input' (a batch of items) or 'messages' (one chat-style item), not both",
                       param="messages", code="invalid_request")
    if not sent:
        raise ApiError(400, "missing required field 'input' (or 'messages', vLLM's chat-style form)", param="input",
                       code="invalid_request")
    return sent[0]


# ---- response helpers ----------------------------------------------------------------------------------
def usage(output: BatchOutput) -> dict[str, int]:
    text = int(output.text_tokens.sum())
    visual = int(output.visual_tokens.sum())
    return {"prompt_tokens": text + visual, "total_tokens": text + visual, "text_tokens": text,
            "visual_tokens": visual}
