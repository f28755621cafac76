"""The doubt queue: which windows the model asks a person about, and why."""

import numpy as np

from hawk.doubt import Candidate, DoubtSettings, candidates, rank_doubts


def cand(file, offset, kept, score, keep=None, other="Noise", other_score=0.0):
    return Candidate(file, offset, kept, score, keep, other, other_score)


def test_each_kind_of_doubt_gets_its_turn_best_first_then_the_margin_fills_the_budget():
    pool = [
        cand("k.wav", 0.0, True, 0.95, keep=0.10),  # kept, out of fold says no: first of its kind
        cand("k.wav", 1.5, True, 0.90, keep=0.30),
        cand("k.wav", 3.0, True, 0.99, keep=0.90),  # kept and agreed with: the last kept window asked
        cand("d.wav", 0.0, False, 0.97),  # dropped, model says yes
        cand("d.wav", 1.5, False, 0.70),
        cand("o.wav", 0.0, True, 0.60, keep=0.8, other="FACH", other_score=0.92),  # a confusion
        cand("o.wav", 1.5, True, 0.80, keep=0.9, other="Noise", other_score=0.95),  # Noise says nothing new
        cand("m.wav", 0.0, False, 0.52),  # dropped and just over the boundary: still "dropped_high"
        cand("m.wav", 1.5, False, 0.45),
    ]
    q = rank_doubts(pool, "RIWH", DoubtSettings(size=9), ignore_other=["Noise"])
    got = [(d.window.file, d.window.offset, d.reason) for d in q]
    assert got[:3] == [("k.wav", 0.0, "kept_low"), ("d.wav", 0.0, "dropped_high"), ("o.wav", 0.0, "other_high")]
    assert got[3:5] == [("k.wav", 1.5, "kept_low"), ("d.wav", 1.5, "dropped_high")]
    assert ("m.wav", 0.0, "dropped_high") in got  # 0.52 is a dropped window the model calls yes
    assert got[5:8] == [("k.wav", 3.0, "kept_low"), ("m.wav", 0.0, "dropped_high"), ("o.wav", 1.5, "kept_low")]
    assert got[-1] == ("m.wav", 1.5, "margin")  # the rest of the budget: nearest 0.5
    assert [d.rank for d in q] == list(range(1, 10)) and len({(f, o) for f, o, _ in got}) == 9
    assert "0.10 out of fold" in q[0].why and "FACH scores 0.92" in q[2].why


def test_a_class_curated_by_the_model_is_asked_about_its_least_likely_kept_windows():
    # select keeps only windows whose keep score passed its threshold (0.5), so no kept window scores
    # under the boundary; the lowest of them are still the kept windows most likely empty
    pool = [cand(f"k{i}.wav", 0.0, True, 0.9, keep=k) for i, k in enumerate((0.97, 0.55, 1.0, 0.62, 0.51))]
    q = rank_doubts(pool, "RIWH", DoubtSettings(size=3))
    assert [(d.window.file, d.reason) for d in q] == [("k4.wav", "kept_low"), ("k1.wav", "kept_low"),
                                                      ("k3.wav", "kept_low")]


def test_a_judged_window_is_never_asked_again_and_the_budget_holds():
    pool = [cand(f"r{i}.wav", 0.0, True, s, keep=s) for i, s in enumerate(np.linspace(0.05, 0.95, 30))]
    first = rank_doubts(pool, "RIWH", DoubtSettings(size=10))
    assert len(first) == 10 and first[0].window.file == "r0.wav"
    judged = [(d.window.file, d.window.offset) for d in first]
    second = rank_doubts(pool, "RIWH", DoubtSettings(size=10), judged=judged)
    assert len(second) == 10 and not {(d.window.file, d.window.offset) for d in second} & set(judged)
    assert rank_doubts(pool, "RIWH", DoubtSettings(size=100), judged=judged)[-1].rank == 20


def test_candidates_name_the_other_class_that_scores_highest():
    scores = np.array([[0.9, 0.2, 0.7], [0.1, 0.8, 0.3]], np.float32)
    got = candidates(scores, [("a.wav", 0.0), ("a.wav", 1.5)], ["RIWH", "FACH", "Noise"], "RIWH",
                     kept={("a.wav", 0.0)}, keep_scores={"a.wav": {1.5: 0.2}})
    assert [(c.kept, c.score, c.keep_score, c.other) for c in got] == [
        (True, np.float32(0.9), None, "Noise"), (False, np.float32(0.1), 0.2, "FACH")]
    assert abs(got[1].other_score - 0.8) < 1e-6
