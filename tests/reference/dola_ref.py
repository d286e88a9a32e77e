"""Reference DoLa: transformers 4.46.3's ``generate(dola_layers=..., do_sample=False)``.

Runs inside ``.venv-ref`` (made by ``scripts/make_reference_env.sh``), never in the project
environment; transformers 5 moved DoLa out of the library (to remote code on the Hub). Reads a
JSON list of requests on stdin and prints a JSON list of answers, in one process::

    request: {"model": DIR, "prompts": [[ids...], ...], "layers": "high" | "low" | [ints],
              "repetition_penalty": 1.2, "max_new_tokens": 32, "batch_size": 1,
              "eos_token_ids": [2], "pad_token_id": 0}
    answer:  {"tokens": [[new ids...], ...], "transformers": "4.46.3"}

Prompts are left-padded per batch of ``batch_size``; ``tokens`` holds each prompt's new tokens
as generate returns them (padded after EOS).
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    models: dict = {}
    answers = []
    for req in json.load(sys.stdin):
        if req["model"] not in models:
            models[req["model"]] = AutoModelForCausalLM.from_pretrained(req["model"], torch_dtype="float32").eval()
        model, pad = models[req["model"]], int(req["pad_token_id"])
        batch, prompts, tokens = int(req["batch_size"]), req["prompts"], []
        for start in range(0, len(prompts), batch):
            chunk = prompts[start:start + batch]
            width = max(len(p) for p in chunk)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, dola_layers=req["layers"], do_sample=False,
                                     repetition_penalty=float(req["repetition_penalty"]),
                                     max_new_tokens=int(req["max_new_tokens"]),
                                     eos_token_id=list(req["eos_token_ids"]), pad_token_id=pad)
            tokens += out[:, ids.shape[1]:].tolist()
        answers.append({"tokens": tokens, "transformers": transformers.__version__})
    json.dump(answers, sys.stdout)
    print()


if __name__ == "__main__":
    main()
