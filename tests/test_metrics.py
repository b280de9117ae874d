"""Hand-made cases with answers worked out on paper."""

import math

import numpy as np
import pytest

from xsam_core.evaluation.metrics import (
    ExactMatch,
    GCGMetrics,
    InstanceAP,
    MaskIoU,
    PanopticQuality,
    SemanticIoU,
    VGDMetrics,
    format_table,
    iou,
)


def box(shape, rows, cols):
    """Boolean mask with the rectangle rows=(r0, r1), cols=(c0, c1) (half-open) set."""
    m = np.zeros(shape, dtype=bool)
    m[rows[0]:rows[1], cols[0]:cols[1]] = True
    return m


def test_iou_helper():
    a = box((4, 4), (0, 2), (0, 2))
    b = box((4, 4), (0, 2), (1, 3))
    assert iou(a, b) == pytest.approx(2 / 6)
    assert iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert iou(np.zeros((4, 4)), a) == 0.0


def test_mask_iou_mean_and_cumulative():
    m = MaskIoU()
    m.add(box((4, 4), (0, 2), (0, 4)), np.ones((4, 4)))  # I=8, U=16 -> 0.5
    m.add(np.zeros((4, 4)), np.zeros((4, 4)))  # empty vs empty -> 1.0
    m.add(np.zeros((4, 4)), box((4, 4), (0, 2), (0, 2)))  # empty vs 4 px -> 0.0, U=4
    r = m.result()
    assert r["miou"] == pytest.approx(1.5 / 3)
    assert r["ciou"] == pytest.approx(8 / 20)
    assert r["n"] == 3


def test_mask_iou_perfect():
    m = MaskIoU()
    m.add(box((5, 5), (1, 3), (1, 4)), box((5, 5), (1, 3), (1, 4)))
    assert m.result()["miou"] == 1.0 and m.result()["ciou"] == 1.0


CATS = [{"id": 1, "isthing": 1}, {"id": 2, "isthing": 0}, {"id": 3, "isthing": 1}]


def test_pq_perfect():
    s = (10, 10)
    gt = [(box(s, (0, 2), (0, 10)), 1), (box(s, (2, 4), (0, 10)), 1), (box(s, (4, 10), (0, 10)), 2)]
    pq = PanopticQuality(CATS)
    pq.add(gt, gt)
    r = pq.result()
    assert (r["pq"], r["sq"], r["rq"], r["pq_things"], r["pq_stuff"]) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert r["n"] == 2  # category 3 never appears and is not averaged


def test_pq_false_positive_and_miss():
    s = (10, 10)
    gt = [(box(s, (0, 2), (0, 10)), 1),  # thing A, 20 px
          (box(s, (2, 4), (0, 10)), 1),  # thing B, 20 px: missed (FN)
          (box(s, (4, 10), (0, 10)), 2)]  # stuff, 60 px
    pred = [(box(s, (0, 2), (0, 10)) | box(s, (2, 3), (0, 5)), 1),  # A + 5 px: IoU 20/25
            (box(s, (4, 5), (0, 5)), 1),  # thing on stuff: FP
            (box(s, (5, 10), (0, 10)), 2)]  # stuff, IoU 50/60
    pq = PanopticQuality(CATS)
    pq.add(pred, gt)
    r = pq.result()
    # thing: TP=1 FP=1 FN=1 -> RQ = 1/(1+.5+.5) = .5, SQ = .8, PQ = .4; stuff: PQ = SQ = 5/6
    assert r["per_category"][1] == {"pq": pytest.approx(0.4), "sq": pytest.approx(0.8),
                                    "rq": 0.5, "tp": 1, "fp": 1, "fn": 1}
    assert r["pq_things"] == pytest.approx(0.4)
    assert r["pq_stuff"] == pytest.approx(5 / 6)
    assert r["pq"] == pytest.approx((0.4 + 5 / 6) / 2)
    assert r["sq"] == pytest.approx((0.8 + 5 / 6) / 2)
    assert r["rq"] == pytest.approx(0.75)


def test_pq_void_handling():
    s = (8, 8)
    gt = [(box(s, (0, 4), (0, 4)), 1)]  # 16 px; every other pixel is void
    pred = [
        # 12 px on the GT + 8 px on void: IoU = 12 / (20 + 16 - 12 - 8) = 0.75
        # (a plain IoU would be 12/24 = 0.5, not a match)
        (box(s, (0, 4), (0, 3)) | box(s, (0, 4), (4, 6)), 1),
        (box(s, (6, 8), (0, 4)), 1),  # entirely on void: ignored
        (box(s, (0, 4), (3, 4)) | box(s, (5, 6), (0, 4)), 2),  # exactly half void: an FP
    ]
    pq = PanopticQuality(CATS)
    pq.add(pred, gt)
    r = pq.result()
    assert r["per_category"][1] == {"pq": 0.75, "sq": 0.75, "rq": 1.0, "tp": 1, "fp": 0, "fn": 0}
    assert r["per_category"][2]["fp"] == 1 and r["per_category"][2]["pq"] == 0.0
    assert r["pq"] == pytest.approx(0.375)
    assert r["pq_things"] == 0.75 and r["pq_stuff"] == 0.0


def test_pq_rejects_overlapping_segments():
    s = (4, 4)
    with pytest.raises(ValueError):
        PanopticQuality(CATS).add([(box(s, (0, 2), (0, 4)), 1), (box(s, (1, 3), (0, 4)), 1)], [])


def test_semantic_iou_toy_map():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 2, 2],
                   [255, 255, 2, 2]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 0, 1, 1],
                     [2, 2, 1, 2],
                     [0, 0, 2, 2]])
    m = SemanticIoU(num_classes=4)
    m.add(pred, gt)
    r = m.result()
    # class 0: TP 3, union 4; class 1: TP 4, union 6; class 2: TP 5, union 6; class 3 absent
    assert r["per_class"] == pytest.approx({0: 0.75, 1: 4 / 6, 2: 5 / 6})
    assert r["miou"] == pytest.approx(0.75)
    assert r["pixel_acc"] == pytest.approx(12 / 14)


def test_semantic_iou_accumulates_over_samples():
    m = SemanticIoU(num_classes=2)
    m.add(np.array([[0, 1]]), np.array([[0, 1]]))
    m.add(np.array([[1, 1]]), np.array([[0, 1]]))
    # confusion: class 0 TP 1, FN 1 -> 1/2; class 1 TP 2, FP 1 -> 2/3
    assert m.result()["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m.result()["pixel_acc"] == pytest.approx(3 / 4)


AP_CATS = [{"id": 1}, {"id": 2}]


def test_ap_perfect():
    s = (10, 10)
    ap = InstanceAP(AP_CATS)
    ap.add(1, [(box(s, (0, 3), (0, 3)), 1, 0.9), (box(s, (5, 9), (5, 9)), 2, 0.8)],
           [(box(s, (0, 3), (0, 3)), 1), (box(s, (5, 9), (5, 9)), 2)])
    ap.add(2, [(box(s, (2, 6), (2, 6)), 1, 0.7)], [(box(s, (2, 6), (2, 6)), 1)])
    assert ap.result() == pytest.approx({"ap": 1.0, "ap50": 1.0, "ap75": 1.0})


def test_ap_false_positive_outranking_true_positive():
    s = (10, 10)
    gt = [(box(s, (0, 3), (0, 3)), 1)]
    tp, fp = box(s, (0, 3), (0, 3)), box(s, (6, 9), (6, 9))
    low = InstanceAP(AP_CATS)
    low.add(1, [(tp, 1, 0.9), (fp, 1, 0.8)], gt)
    high = InstanceAP(AP_CATS)
    high.add(1, [(tp, 1, 0.8), (fp, 1, 0.9)], gt)
    assert low.result()["ap"] == pytest.approx(1.0)
    # precision 1/2 at recall 1, for every recall threshold and IoU threshold
    assert high.result() == pytest.approx({"ap": 0.5, "ap50": 0.5, "ap75": 0.5})


def test_ap_partial_overlap_counts_only_low_thresholds():
    s = (10, 10)
    gt = box(s, (0, 5), (0, 5))  # 25 px
    pred = gt.copy()
    pred[4, :] = False
    pred[3, 3:] = False  # 18 px inside the GT: IoU 0.72, matches at .50 .. .70
    ap = InstanceAP(AP_CATS)
    ap.add(7, [(pred, 1, 0.5)], [(gt, 1)])
    r = ap.result()
    assert r == pytest.approx({"ap": 0.5, "ap50": 1.0, "ap75": 0.0})


def test_ap_edge_cases():
    s = (6, 6)
    no_pred = InstanceAP(AP_CATS)
    no_pred.add(1, [], [(box(s, (0, 2), (0, 2)), 1)])
    assert no_pred.result() == {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}

    no_gt = InstanceAP(AP_CATS)
    no_gt.add(1, [(box(s, (0, 2), (0, 2)), 1, 0.9)], [])
    assert all(math.isnan(v) for v in no_gt.result().values())

    assert all(math.isnan(v) for v in InstanceAP(AP_CATS).result().values())

    # A prediction on an image without GT is a false positive for its category.
    mixed = InstanceAP(AP_CATS)
    mixed.add(1, [(box(s, (0, 2), (0, 2)), 1, 0.5)], [(box(s, (0, 2), (0, 2)), 1)])
    mixed.add(2, [(box(s, (3, 5), (3, 5)), 1, 0.9)], [])
    assert mixed.result()["ap"] == pytest.approx(0.5)


def test_vgd_union_iou_and_ap50():
    s = (8, 8)
    g1, g2 = box(s, (0, 2), (0, 2)), box(s, (4, 6), (4, 6))
    hit = g1.copy()
    stray = box(s, (4, 5), (4, 5)) | box(s, (6, 8), (6, 8))  # 1 px of g2 + 4 px outside
    m = VGDMetrics()
    m.add([(hit, 0.9), (stray, 0.8)], [g1, g2])  # unions: I = 5, U = 8 + 4
    m.add([], [])  # nothing to find, nothing found: IoU 1
    r = m.result()
    assert r["miou"] == pytest.approx((5 / 12 + 1.0) / 2)
    # TP then FP, 2 GT: precision 1 up to recall .5, nothing beyond -> 51 of 101 points
    assert r["ap50"] == pytest.approx(51 / 101)
    assert r["n"] == 2


def test_gcg_one_matched_one_missing_phrase():
    s = (8, 8)
    car, tree = box(s, (0, 4), (0, 4)), box(s, (5, 8), (5, 8))
    car_pred = box(s, (0, 3), (0, 4))  # IoU 12/16
    m = GCGMetrics()
    m.add(gt_phrases=[("a red car", car), ("the tree", tree)],
          pred_phrases=[("Red car", car_pred)],
          pred_caption="A red car parks near the house.",
          gt_caption="A red car parks next to a tree.")
    r = m.result()
    assert r["phrase_miou"] == pytest.approx(0.375)
    assert r["recall"] == 0.5
    assert r["caption_recall"] == 0.5
    # "red car parks near house" vs "red car parks next to tree": P 3/5, R 3/6
    assert r["caption_f1"] == pytest.approx(6 / 11)
    assert (r["n"], r["n_phrases"]) == (1, 2)


def test_gcg_text_match_takes_priority_over_iou():
    s = (8, 8)
    dog, cat = box(s, (0, 4), (0, 4)), box(s, (5, 8), (5, 8))
    half_dog = box(s, (0, 4), (0, 2))  # IoU with dog 8/16
    m = GCGMetrics()
    m.add([("dog", dog), ("cat", cat)], [("cat", dog), ("dog", half_dog)], "", "")
    r = m.result()
    # text pairs dog<->dog (IoU .5, a hit) and cat<->cat (IoU 0); an IoU-only matching
    # would pair dog<->"cat" (IoU 1), giving phrase_miou .5 and recall 0.
    assert r["phrase_miou"] == pytest.approx(0.25)
    assert r["recall"] == 0.5
    assert r["caption_f1"] == 1.0  # two empty captions agree


def test_exact_match():
    m = ExactMatch()
    m.add("Yes.", "yes")
    m.add("  The  Red   car! ", "the red car")
    m.add("red car", "the red car")
    m.add("3", "3.5")
    assert m.result() == {"accuracy": 0.5, "n": 4}


def test_format_table():
    text = format_table({
        "refseg": {"miou": 0.5, "ciou": 0.4, "n": 3},
        "panoptic": {"pq": 0.61666, "per_category": {1: {"pq": 0.4}}, "n": 2},
        "gcg": {"recall": float("nan")},
    })
    assert text.splitlines() == [
        "task        miou    ciou  n      pq  recall",
        "--------  ------  ------  -  ------  ------",
        "refseg    0.5000  0.4000  3       -       -",
        "panoptic       -       -  2  0.6167       -",
        "gcg            -       -  -       -     nan",
    ]


def test_exact_match_per_kind():
    m = ExactMatch()
    m.add("two", "two", "count")
    m.add("red", "blue", "colour")
    m.add("yes", "yes", "exists")
    m.add("no", "yes", "exists")
    assert m.result() == {"accuracy": 0.5, "n": 4, "accuracy_colour": 0.0, "n_colour": 1, "accuracy_count": 1.0,
                          "n_count": 1, "accuracy_exists": 0.5, "n_exists": 2}


def test_gcg_object_phrases_scored_apart_from_stuff():
    s = (8, 8)
    star, wall = box(s, (0, 4), (0, 4)), box(s, (4, 8), (0, 8))
    m = GCGMetrics()
    # the wall is named and segmented right; the star is segmented right but called a circle
    m.add([("a small red star", star), ("the wall", wall)], [("a small red circle", star), ("the wall", wall)],
          "", "", is_thing=[True, False])
    r = m.result()
    assert r["recall"] == 0.5 and r["object_recall"] == 0.0
    assert r["object_miou"] == 1.0  # the only unmatched text pairs by IoU
