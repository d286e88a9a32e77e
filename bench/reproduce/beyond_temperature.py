"""The study of "Beyond Temperature" (Li et al. 2026) and "The Hyperfitting Phenomenon" (Carlsson et
al. 2025), run as seven stages (the judge's only when one is given) on any model; each table is written as soon as its stage ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.reproduce.study import Study


def _tables(study: Study, stage: str) -> None:
    from bench.reproduce import tables as t
    from bench.reproduce.training import methods_table

    out = study.path("tables")
    if stage == "hyperfit":
        t.write_csv(out / "methods.csv", methods_table(study.results["hyperfit"]["checkpoints"]))
    elif stage == "score":
        t.write_csv(out / "control.csv", t.control_rows(study))
    elif stage == "judge":
        from bench.reproduce.judging import table_rows

        rows = table_rows(study)
        if rows:
            t.write_csv(out / "judge.csv", rows)
        else:  # no judge (any more): no table of an earlier one
            (out / "judge.csv").unlink(missing_ok=True)
    elif stage == "mechanism":
        t.write_csv(out / "rank_reordering.csv", t.rank_rows(study))
        t.write_csv(out / "reweighting.csv", t.reweighting_rows(study))
        from bench.reproduce.mechanism import geometry_rows

        seeds = [r["seed"] for r in study.results["mechanism"]["per_seed"]]
        t.write_csv(out / "geometry.csv", geometry_rows(study, seeds))
    elif stage == "intervention":
        t.write_csv(out / "methods.csv", methods_table(study.results["hyperfit"]["checkpoints"]
                                                       + study.results["intervention"]["checkpoints"]))
        t.write_csv(out / "intervention.csv", t.intervention_rows(study))
    elif stage == "statistics":
        t.write_csv(out / "claims.csv", study.results["statistics"]["claims"])


def stage_functions() -> list[tuple[str, Callable[[Study], Any]]]:
    from bench.reproduce.causal import intervention_stage
    from bench.reproduce.decoding import decode_stage, score_stage
    from bench.reproduce.judging import judge_stage
    from bench.reproduce.mechanism import mechanism_stage
    from bench.reproduce.statements import statistics_stage
    from bench.reproduce.training import hyperfit_stage

    return [("hyperfit", hyperfit_stage), ("decode", decode_stage), ("score", score_stage), ("judge", judge_stage),
            ("mechanism", mechanism_stage), ("intervention", intervention_stage), ("statistics", statistics_stage)]


def run_study(study: Study) -> None:
    """Run (or continue) every stage; tables and the report are rewritten after each."""
    from bench.reproduce.report import write_report

    study.open()
    for name, fn in stage_functions():
        fresh = name not in study.results
        study.run(name, fn)
        if fresh or not _tables_present(study, name):
            _tables(study, name)
            write_report(study)
    write_report(study)


def _tables_present(study: Study, stage: str) -> bool:
    names = {"hyperfit": ["methods"], "decode": [], "score": ["control"], "judge": [],
             "mechanism": ["rank_reordering", "reweighting", "geometry"], "intervention": ["intervention"],
             "statistics": ["claims"]}[stage]
    return all(study.path("tables", f"{n}.csv").exists() for n in names)
