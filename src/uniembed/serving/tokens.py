"""`POST /pooling` with `"task": "token_embed"`: a multi-vector (late-interaction) model's token embeddings.

The request and response follow vLLM's pooling API, so clients written for `vllm serve --runner pooling` work
unchanged (vllm-project/vllm @ 343bacafc7bf4f973a105e8e7d99fa7de61f7e18, vllm/entrypoints/pooling/pooling/
protocol.py: the request's `task` names the pooling task, "token_embed" for per-token embeddings; each response
row is `PoolingResponseData` {"index", "object": "pooling", "data": list[list[float]] | str}). Request:
    {"input": <items, as /v1/embeddings>, "task": "token_embed", "model": ..., "input_type": "query"|"document",
     "encoding_format": "float"|"base64"}
Response: {"object": "list", "model", "data": [{"index": i, "object": "pooling", "data": [[...], ...],
"shape": [n_i, D]}], "usage": <as /v1/embeddings'>}: item i's n_i kept tokens (`Embedder.encode_multi`:
padding and masked prompt tokens dropped, rows L2-normalised), in input order; with base64, `data` is the
little-endian float32 bytes of the n_i x D matrix, row by row, and `shape` says how to reshape it (vLLM's
base64 form carries no shape; ours adds it). Score them with MaxSim (`uniembed.losses.maxsim`). A single-vector
model answers 400 `not_multi_vector`. Encoding runs on the server's model thread (`DynamicBatcher.run_on_model`,
`ModelRunner.encode_tokens`, TOKEN_BATCH items a forward), between the dynamic batches of /v1/embeddings.
`/v1/search` on a multi-vector index (`serve --index`) uses the same token embeddings for its query.
"""
from __future__ import annotations

import base64
from typing import Any, Awaitable, Callable, Literal

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import Field

from ..errors import ConfigError, InputError
from .errors import ApiError, bad_input
from .runner import BatchOutput
from .schemas import RawInput, _Strict, error_responses

TOKEN_BATCH = 16  # items per forward of a token-embedding request


class TokenEmbeddingRequest(_Strict):
    input: RawInput = Field(description="a string, a list of strings, or a list of items (each gives a token matrix)")
    task: Literal["token_embed"] = Field(default="token_embed", description="vLLM's pooling task: per-token embeddings")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["query", "document"] | None = Field(
        default=None, description="apply the model's named prompt for queries or documents")
    user: str | None = None


def token_row(index: int, tokens: np.ndarray, encoding_format: str) -> dict[str, Any]:
    """One response row: the item's token matrix as nested floats, or base64 float32 bytes, with its shape."""
    tokens = np.asarray(tokens, dtype="<f4")
    data = base64.b64encode(tokens.tobytes()).decode("ascii") if encoding_format == "base64" else tokens.tolist()
    return {"index": index, "object": "pooling", "data": data, "shape": list(tokens.shape)}


async def token_embeddings(state: Any, items: list, input_type: str | None, field: str
                           ) -> tuple[list[np.ndarray], BatchOutput]:
    """The items' token embeddings (the model's named prompt for `input_type` applied) and their usage."""
    resolved = state.runner.resolve_instruction(items, input_type)
    tokens: list[np.ndarray] = []
    counts: list[BatchOutput] = []
    try:
        for start in range(0, len(resolved), TOKEN_BATCH):
            rows, output = await state.batcher.run_on_model(state.runner.encode_tokens, resolved[start:start + TOKEN_BATCH])
            tokens.extend(rows)
            counts.append(output)
    except (InputError, ConfigError) as exc:
        raise bad_input(exc, field) from None
    return tokens, BatchOutput(np.zeros((len(tokens), 0), np.float32),
                               np.concatenate([c.text_tokens for c in counts]),
                               np.concatenate([c.visual_tokens for c in counts]))


def check_multi_vector(state: Any) -> None:
    """400 `not_multi_vector` unless the served model has token embeddings."""
    if not getattr(state.model, "multi_vector_dimension", None):
        raise ApiError(400, f"'{state.config.served_model_name}' is a single-vector model: it has no token "
                            "embeddings (task token_embed needs a multi-vector model with a late-interaction head); "
                            "use /v1/embeddings for its one vector per item", param="task", code="not_multi_vector")


def add_token_routes(app: FastAPI, state: Any, parse: Callable[..., Awaitable[list]],
                     check_model: Callable[[str | None], None], with_timeout: Callable[[Awaitable], Awaitable],
                     usage: Callable[[BatchOutput], dict]) -> None:
    """Register `POST /pooling` on the app (`parse`, `check_model`, `with_timeout`, `usage`: the app's helpers)."""

    @app.post("/pooling", responses=error_responses(404))
    async def pooling(body: TokenEmbeddingRequest) -> JSONResponse:
        """Token embeddings (late interaction) of each item of `input`, in vLLM's pooling-API shape."""
        check_model(body.model)
        check_multi_vector(state)

        async def work() -> tuple[list[np.ndarray], BatchOutput]:
            return await token_embeddings(state, await parse(body.input, "input"), body.input_type, "input")

        tokens, output = await with_timeout(work())
        return JSONResponse({"object": "list", "model": state.config.served_model_name,
                             "data": [token_row(i, t, body.encoding_format) for i, t in enumerate(tokens)],
                             "usage": {**usage(output), "token_vectors": int(sum(len(t) for t in tokens))}})
