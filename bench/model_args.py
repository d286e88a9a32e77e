"""Per-model settings (``--model NAME:key=value,...``) and chat templates.

``--model`` takes the same ``NAME[:key=value,...]`` form as ``--decoder``. The arguments change how
the model is loaded, so they go into the run identity (and a row label), and each is checked at
plan time with a one-line error: a value outside its menu, a library the setting needs that is not
installed, or a backend that cannot apply it.

Chat templates (``--chat-template``, ``--system-prompt``): each prompt becomes the user turn of a
conversation rendered by the tokenizer's own template, with the generation prompt appended; the
record keeps the suite's prompt text, and the run identity records the template's use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Sequence

from bench.errors import BenchError

MODEL_ARGS: dict[str, str] = {
    "revision": "Hub revision (branch, tag or commit) of this model; overrides --revision",
    "dtype": "auto, float32, bfloat16 or float16; overrides --dtype for this model",
    "device_map": "transformers' device_map (e.g. auto: spread over the GPUs; needs accelerate)",
    "attn_implementation": "eager, sdpa, flash_attention_2, flash_attention_3 or flex_attention",
    "quantization": "4bit or 8bit, loaded through bitsandbytes (needs bitsandbytes and, in practice, CUDA)",
    "label": "the model's name in tables and progress lines (display only: not in the run identity)",
}
"""Every model argument with its help line."""
ATTENTION = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
QUANTIZATION = ("4bit", "8bit")
NEEDS_LIBRARY = {("attn_implementation", "flash_attention_2"): "flash_attn",
                 ("attn_implementation", "flash_attention_3"): "flash_attn_interface",
                 ("quantization", "4bit"): "bitsandbytes", ("quantization", "8bit"): "bitsandbytes"}
"""(argument, value) -> the module it needs installed."""


@dataclass(frozen=True)
class ModelRequest:
    """One ``--model`` value, split into the model and its arguments."""

    name: str
    """Hugging Face id or local directory."""
    args: tuple[tuple[str, str], ...] = ()
    """(argument, value) pairs, sorted by argument (``label`` is not among them)."""
    label: str | None = None
    """``label=NAME``: how tables name the model."""

    def get(self, key: str) -> str | None:
        return dict(self.args).get(key)


def parse_model(text: str) -> ModelRequest:
    """Split ``NAME[:key=value,...]``. A suffix that is not ``key=value`` pairs belongs to the name
    (a path may contain ':'); ``key=value`` pairs with an unknown key are an error."""
    name, sep, tail = text.rpartition(":")
    items = [s.strip() for s in tail.split(",")] if sep else []
    if not sep or not name or not items or not all("=" in i and i.partition("=")[0].strip() for i in items):
        return ModelRequest(text)
    args: dict[str, str] = {}
    for item in items:
        key, _, value = (s.strip() for s in item.partition("="))
        if key not in MODEL_ARGS:
            import difflib

            close = difflib.get_close_matches(key, list(MODEL_ARGS), n=1)
            raise BenchError(f"--model {text}: unknown model argument '{key}'"
                             + (f"; did you mean '{close[0]}'?" if close else "")
                             + f" (model arguments: {', '.join(MODEL_ARGS)})")
        if key in args:
            raise BenchError(f"--model {text}: argument '{key}' is given twice")
        args[key] = value
    label = args.pop("label", None)
    if label is not None and not label:
        raise BenchError(f"--model {text}: argument 'label' has no value")
    request = ModelRequest(name, tuple(sorted(args.items())), label)
    _check_values(text, request)
    return request


def _check_values(text: str, request: ModelRequest) -> None:
    from bench.runtime import DTYPES

    menus = {"dtype": DTYPES, "attn_implementation": ATTENTION, "quantization": QUANTIZATION}
    for key, value in request.args:
        if not value:
            raise BenchError(f"--model {text}: argument '{key}' has no value")
        if key in menus and value not in menus[key]:
            raise BenchError(f"--model {text}: {key} must be one of {', '.join(menus[key])}, got '{value}'")
        module = NEEDS_LIBRARY.get((key, value)) or ("accelerate" if key == "device_map" else None)
        if module and importlib.util.find_spec(module) is None:
            raise BenchError(f"--model {text}: {key}={value} needs the '{module}' package, which is not installed")


def check_supported(text: str, request: ModelRequest, backend: str, supported: frozenset[str]) -> None:
    """Refuse model arguments that ``backend`` cannot apply (they would be silently ignored)."""
    for key, _ in request.args:
        if key not in supported:
            takes = ", ".join(sorted(supported)) or "none"
            raise BenchError(f"--model {text}: argument '{key}' does not apply to --backend {backend} "
                             f"(it takes: {takes})")


def loading_kwargs(args: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained`` from the loading arguments (not revision and dtype)."""
    given = dict(args)
    kwargs: dict[str, Any] = {}
    if "device_map" in given:
        kwargs["device_map"] = given["device_map"]
    if "attn_implementation" in given:
        kwargs["attn_implementation"] = given["attn_implementation"]
    if "quantization" in given:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=given["quantization"] == "4bit", load_in_8bit=given["quantization"] == "8bit")
    return kwargs


@dataclass(frozen=True)
class ChatTemplate:
    """Render prompts as the user turn of a chat, with the tokenizer's own template."""

    system_prompt: str | None = None
    """An optional system turn before each prompt."""

    def ids(self, tokenizer: Any, text: str) -> list[int]:
        """The prompt's token ids through the template, generation prompt included; the template
        places the special tokens, so none are added a second time."""
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + \
            [{"role": "user", "content": text}]
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]


def check_chat_template(tokenizer: Any, model: str) -> None:
    """One line for a tokenizer without a chat template."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise BenchError(f"--chat-template: the tokenizer of '{model}' has no chat template "
                         "(a base model: run it without --chat-template)")
    try:  # rendered once at plan time: a template the Jinja sandbox blocks, or one that fails, stops here
        ChatTemplate(None).ids(tokenizer, "probe")
    except Exception as exc:  # jinja2's SecurityError / TemplateError and whatever a template raises
        from bench.errors import one_line

        raise BenchError(f"--chat-template: the chat template of '{model}' cannot be rendered "
                         f"({type(exc).__name__}: {one_line(exc, 160)})") from None
