"""The runtime layer every command shares: devices and dtypes, loading models under the pickle rule,
content fingerprints and Hub commits, provenance, and the KV-cache argument of forward calls.

Importing it is cheap: torch, transformers and huggingface_hub are imported inside the functions.
"""

from bench.runtime.devices import DEVICES_HELP, DTYPES, PRECISIONS, resolve_device, resolve_dtype, torch_dtype
from bench.runtime.fingerprint import (SCHEME, cache_root, content_fingerprint, hub_commit, legacy_fingerprint,
                                       model_identity)
from bench.runtime.forward import cache_kwargs
from bench.runtime.loading import (allow_pickle, check_weights, context_length, first_line, load_config, load_model,
                                   load_tokenizer, model_dir)
from bench.runtime.provenance import git_commit, package_versions, write_json_atomic

__all__ = [
    "DEVICES_HELP", "DTYPES", "PRECISIONS", "SCHEME", "allow_pickle", "cache_kwargs", "cache_root", "check_weights",
    "content_fingerprint", "context_length", "first_line", "git_commit", "hub_commit", "legacy_fingerprint",
    "load_config", "load_model", "load_tokenizer", "model_dir", "model_identity", "package_versions",
    "resolve_device", "resolve_dtype", "torch_dtype", "write_json_atomic",
]
