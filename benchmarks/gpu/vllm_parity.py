"""The GPU benchmark's `vllm` section: vLLM's pooling runner on the exported model against `Embedder.encode`.

The model folder the `model` section saves is already an export (`Embedder.save_pretrained` writes the chat
template and the sentence-transformers / pooler files). vLLM renders each request as a client's `messages` would be
rendered by that template and embeds it; the section reports the cosine per modality. Where vLLM is not importable
(CPU machines: it does not install there) the section is skipped and says so.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def vllm_parity(model_dir: Path) -> dict[str, Any]:
    if importlib.util.find_spec("vllm") is None:
        return {"skipped": "vLLM is not importable here (pip install vllm on a GPU machine runs this section)"}
    import numpy as np
    import torch
    from PIL import Image
    from vllm import LLM

    from uniembed import Embedder

    if not torch.cuda.is_available():
        return {"skipped": "vLLM's pooling runner needs a GPU here"}
    embedder = Embedder.from_pretrained(model_dir, device="cuda")
    template = (model_dir / "chat_template.jinja").read_text()
    image = Image.new("RGB", (224, 168), (200, 30, 30))
    image.paste((0, 0, 255), (40, 40, 120, 120))
    cases = {  # name: (uniembed input, message content parts, images)
        "text": ("a red circle", [{"type": "text", "text": "a red circle"}], []),
        "image": ({"image": image}, [{"type": "image_url", "image_url": {"url": "x"}}], [image]),
        "text+image": ({"text": "a red circle", "image": image},
                       [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "a red circle"}],
                       [image]),
    }
    llm = LLM(model=str(model_dir), runner="pooling", enforce_eager=True, gpu_memory_utilization=0.3,
              max_model_len=4096, chat_template=str(model_dir / "chat_template.jinja"))
    cosines = {}
    for name, (item, content, images) in cases.items():
        prompt = embedder.backbone.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], chat_template=template, tokenize=False, add_generation_prompt=True)
        request: dict[str, Any] = {"prompt": prompt}
        if images:
            request["multi_modal_data"] = {"image": images if len(images) > 1 else images[0]}
        served = np.asarray(llm.embed([request])[0].outputs.embedding, dtype=np.float32)
        reference = embedder.encode([item])[0]
        cosines[name] = round(float(served @ reference / np.linalg.norm(served) / np.linalg.norm(reference)), 6)
    return {"cosine": cosines, "min_cosine": min(cosines.values())}
