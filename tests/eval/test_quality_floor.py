"""CI guard: the default mode must stay at or above the floor in eval/floor.json.

Retrieval and highlight are gated on the split named in the floor (test, as before); the verdict
(AUROC answerable vs near-topic, kept and refused rates) is gated on the dev split it was fitted on,
and its test figures are only reported (floor["verdict"]["reported_on_test"]).
"""

import json

import pytest

from eval.evaluation import EVAL_DIR, baseline_system, evaluate, load_questions, service_system


pytestmark = pytest.mark.slow  # whole question splits: `make test` (CI), not the edit-test loop


def test_default_mode_holds_the_floor_and_beats_the_tutorial_baseline(service):
    floor = json.loads((EVAL_DIR / "floor.json").read_text())
    questions = [q for q in load_questions() if q.split == floor["split"]]
    report = evaluate({"default": service_system(service, floor["mode"]), "baseline": baseline_system(service)}, questions)
    got, baseline = report["systems"]["default"]["all"], report["systems"]["baseline"]["all"]
    for metric in ("r@1", "r@5", "mrr@10", "highlight@1"):
        assert got[metric] >= floor[metric], f"{metric} fell to {got[metric]:.3f}, below the floor {floor[metric]}"
    assert got["mean_chars"] <= floor["max_mean_chars"]
    assert got["r@1"] > baseline["r@1"] and got["mrr@10"] > baseline["mrr@10"]


def test_the_verdict_holds_its_floor_on_dev(service):
    floor = json.loads((EVAL_DIR / "floor.json").read_text())["verdict"]
    questions = [q for q in load_questions() if q.split == floor["split"]]
    got = evaluate({"default": service_system(service, floor["mode"])}, questions)["systems"]["default"]["all"]
    for metric in ("auroc_near", "kept_answerable", "refused_off_topic", "refused_out_of_scope", "refused_near_topic"):
        assert got[metric] >= floor[metric], f"verdict {metric} fell to {got[metric]:.3f}, below the floor {floor[metric]}"
