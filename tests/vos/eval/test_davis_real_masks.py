"""Real DAVIS-2017 val masks (../shared/data/davis17-val-masks): a DAVIS root whose annotations are
the OSVOS masks; RVOS masks scored with the unsupervised protocol must give exactly the numbers of
the official code path (reference in tests/helpers/davis_reference.py); OSVOS against itself scores 1 everywhere."""

import pytest

from tests.helpers.davis_reference import SHARED_MASKS, ref_evaluate, shared_davis_root
from vos.eval import evaluate_davis

pytestmark = pytest.mark.skipif(not SHARED_MASKS.is_dir(), reason=f"shared DAVIS masks not found at {SHARED_MASKS}")

# Short sequences covering 1 to 3 objects, 19/20 proposals and two image widths (854 and 910).
SEQUENCES = ["car-shadow", "judo", "bike-packing"]


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory):
    return shared_davis_root(tmp_path_factory.mktemp("davis"), SEQUENCES)


def test_rvos_unsupervised_equals_official_code_path(tmp_path):
    # The reference computes every (proposal, object, frame) separately and is slow, so the root keeps
    # the first 8 frames of each sequence (tools/bench_eval.py compares all 30 full sequences).
    root = shared_davis_root(tmp_path / "davis", SEQUENCES, n_frames=8)
    results = SHARED_MASKS / "rvos-unsupervised"
    ours = evaluate_davis(root, results, task="unsupervised", workers=2, progress=False)
    ref, ref_rows = ref_evaluate(root, results, task="unsupervised", sequences=SEQUENCES)
    assert ours.global_scores == {k: float(v) for k, v in ref.items()}  # bitwise
    assert len(ours.per_object) == len(ref_rows) == 1 + 2 + 2
    assert 0.0 < ours.global_scores["J&F-Mean"] < 1.0
    ref_stats = sorted(tuple(float(x) for x in row[1:]) for row in ref_rows)
    assert sorted((s.j_mean, s.j_recall, s.j_decay, s.f_mean, s.f_recall, s.f_decay) for s in ours.per_object) == ref_stats


def test_osvos_semi_supervised_against_itself_is_perfect(davis_root):
    result = evaluate_davis(davis_root, SHARED_MASKS / "osvos-semisupervised", task="semi-supervised",
                            workers=2, progress=False)
    assert all(s.j_mean == 1.0 and s.f_mean == 1.0 and s.j_decay == 0.0 for s in result.per_object)
    assert result.global_scores["J&F-Mean"] == 1.0
    assert [s.name for s in result.per_object] == ["car-shadow_1", "judo_1", "judo_2", "bike-packing_1", "bike-packing_2"]


# All 7 global numbers of the official code path (tests/helpers/davis_reference.py: ref_evaluate, ~10 CPU-minutes)
# on the 30 full sequences, RVOS scored against OSVOS, as measured by tools/bench_eval.py
# (docs/benchmarks.md).
REFERENCE_30 = {"J&F-Mean": 0.4005585407354056, "J-Mean": 0.36179556457313217, "J-Recall": 0.3985847868197166,
                "J-Decay": 0.05882070479755748, "F-Mean": 0.439321516897679, "F-Recall": 0.43143609423038687,
                "F-Decay": 0.08420029647667332}


@pytest.mark.slow
def test_all_30_sequences_equal_the_reference_run(tmp_path):
    all_sequences = sorted(p.name for p in (SHARED_MASKS / "osvos-semisupervised").iterdir() if p.is_dir())
    root = shared_davis_root(tmp_path / "davis", all_sequences)
    result = evaluate_davis(root, SHARED_MASKS / "rvos-unsupervised", workers=2, progress=False)
    assert len(result.sequences) == 30 and len(result.per_object) == 61
    assert result.global_scores == REFERENCE_30
