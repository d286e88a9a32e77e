"""``bench analyze``: the experiments of "Beyond Temperature" (Li et al. 2026) on a base model and
its hyperfitted checkpoint.

* :mod:`bench.analysis.contexts`: loading the pair, batched generation and teacher-forced passes of
  both models over the same token sequences (the one place that runs the models).
* :mod:`bench.analysis.stats`: bootstrap intervals over prompts and the participation ratio.
* :mod:`bench.analysis.control`: the entropy-matched control table and the rank reordering.
* :mod:`bench.analysis.reweight`: the static vocabulary reweighting sweep.
* :mod:`bench.analysis.geometry`: layer-wise participation ratio, cosine and L2, logit lens.
* :mod:`bench.analysis.report`: tables (CSV), plots (PNG), ``report.md`` and ``settings.json``.
* :mod:`bench.analysis.cli`: the ``analyze`` command.
"""
