import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from transfer_core.insight.evaluate import (
    _macro_f1,
    bootstrap_intervals,
    classification_report,
    per_image_predictions,
    report_intervals,
    wilson_interval,
)


def test_report_matches_hand_counts():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    report = classification_report([0, 1, 1, 1], probs, ["cat", "dog"])
    assert report["val_accuracy"] == 0.75
    assert report["confusion_matrix"] == [[1, 0], [1, 2]]
    dog = report["per_class"][1]
    assert dog["precision"] == 1.0 and dog["recall"] == 2 / 3 and dog["support"] == 3
    rows = per_image_predictions(["a", "b", "c", "d"], [0, 1, 1, 1], probs, ["cat", "dog"])
    wrong = [r for r in rows if not r["correct"]]
    assert [r["path"] for r in wrong] == ["c"] and wrong[0]["predicted"] == "cat"
    assert abs(wrong[0]["loss"] + np.log(0.4)) < 1e-9


def test_report_metrics_agree_with_scikit_learn_also_for_classes_never_seen_or_never_predicted():
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d", "e"]
    for n in (1, 7, 40):
        for _ in range(10):
            t, p = rng.integers(0, 4, n), rng.integers(0, 3, n)  # "e" never occurs, "d" is never predicted
            report = classification_report(t.tolist(), np.eye(5)[p], classes)
            labels = list(range(5))
            precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
            assert report["val_accuracy"] == pytest.approx(accuracy_score(t, p), abs=1e-12)
            assert report["macro_f1"] == pytest.approx(f1_score(t, p, labels=labels, average="macro", zero_division=0), abs=1e-12)
            assert report["confusion_matrix"] == confusion_matrix(t, p, labels=labels).tolist()
            for i, row in enumerate(report["per_class"]):
                assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision[i], recall[i], f1[i]), abs=1e-12)
                assert row["support"] == support[i] and type(row["support"]) is int


def test_report_refuses_inputs_that_do_not_fit_its_classes():
    probs = np.eye(3)[[0, 1, 2]]
    with pytest.raises(ValueError, match="3 images and 2 rows"):
        classification_report([0, 1, 2], probs[:2], ["a", "b", "c"])
    with pytest.raises(ValueError, match="4 columns for 3 classes"):
        classification_report([0, 1, 2], np.eye(4)[[0, 1, 3]], ["a", "b", "c"])
    with pytest.raises(ValueError, match="class index 3, outside the 3 classes"):
        classification_report([0, 1, 3], probs, ["a", "b", "c"])
    assert classification_report([], np.zeros((0, 2)), ["a", "b"])["val_accuracy"] == 0.0


def test_fast_macro_f1_agrees_with_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t, p = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
        matrix = confusion_matrix(t, p, labels=range(5))
        assert abs(_macro_f1(np.diag(matrix), matrix.sum(0) + matrix.sum(1)) - f1_score(t, p, average="macro")) < 1e-12


def test_bootstrap_interval_is_wide_for_small_sets_and_narrow_for_large():
    small = bootstrap_intervals([0, 1] * 10, [0, 1] * 8 + [1, 0] * 2, 2)
    large = bootstrap_intervals([0, 1] * 1000, [0, 1] * 800 + [1, 0] * 200, 2)
    low, high = small["val_accuracy"]
    assert low < 0.8 < high and high - low > 0.2
    assert large["val_accuracy"][1] - large["val_accuracy"][0] < 0.05


def test_report_carries_reproducible_intervals_that_old_reports_recompute_the_same():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 3, 60)
    probs = np.eye(3)[np.where(rng.random(60) < 0.8, targets, rng.integers(0, 3, 60))]
    report = classification_report(targets, probs, ["a", "b", "c"])
    low, high = report["intervals"]["val_accuracy"]
    assert low < report["val_accuracy"] < high
    assert report["intervals"] == classification_report(targets, probs, ["a", "b", "c"])["intervals"]  # fixed seed
    old = {k: v for k, v in report.items() if k != "intervals"}  # a report.json from before intervals were stored
    assert report_intervals(old) == report_intervals(report)
    shuffled = rng.permutation(60)  # only the counts matter, not the order of the images
    assert classification_report(targets[shuffled], probs[shuffled], ["a", "b", "c"])["intervals"] == report["intervals"]
    assert bootstrap_intervals(targets, probs.argmax(1), 3)["macro_f1"] == report_intervals(report)["macro_f1"]
    assert report_intervals(report)["val_accuracy"] == wilson_interval(int((probs.argmax(1) == targets).sum()), 60)


def test_accuracy_interval_of_a_tiny_perfect_set_does_not_collapse():
    report = classification_report([0, 0, 1, 1], np.eye(2)[[0, 0, 1, 1]], ["ant", "bee"])
    low, high = report["intervals"]["val_accuracy"]
    assert high == 1.0 and 0.45 < low < 0.55  # 4 of 4 right: Wilson's 95 % interval is 51 % – 100 %, not [1, 1]
    assert (low, high) == wilson_interval(4, 4)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # the textbook value
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(0, 5)[1] > 0.4


def test_a_report_stored_with_bootstrap_accuracy_intervals_gets_the_wilson_interval():
    report = classification_report([0, 0, 1, 1], np.eye(2)[[0, 0, 1, 1]], ["ant", "bee"])
    old = {k: v for k, v in report.items() if k not in ("intervals", "interval_methods")}
    old["intervals"] = {"val_accuracy": [1.0, 1.0], "macro_f1": [1.0, 1.0]}  # what report.json used to hold
    assert report_intervals(old) == report_intervals(report)
    assert report_intervals(old)["val_accuracy"][0] < 0.6


def test_small_validation_sets_are_warned_about_by_count_and_by_width():
    from transfer_core.insight.evaluate import small_sample_warning

    tiny = classification_report([0, 0, 1, 1], np.eye(2)[[0, 0, 1, 1]], ["ant", "bee"]) | {"val_size": 4}
    assert "4 validation images" in small_sample_warning(tiny)
    targets = np.array([0, 1] * 1000)
    large = classification_report(targets, np.eye(2)[targets], ["ant", "bee"]) | {"val_size": 2000}
    assert small_sample_warning(large) is None
    noisy_targets = np.array([0, 1] * 100)
    noisy = np.eye(2)[np.where(np.arange(200) % 5 == 0, 1 - noisy_targets, noisy_targets)]
    wide = classification_report(noisy_targets, noisy, ["ant", "bee"]) | {"val_size": 200}
    assert wide["intervals"]["val_accuracy"][1] - wide["intervals"]["val_accuracy"][0] > 0.10
    assert "could plausibly be anywhere" in small_sample_warning(wide)


def test_best_epoch_verdict_says_what_the_best_epoch_means():
    from transfer_core.insight.evaluate import best_epoch_verdict

    fine_tuned = best_epoch_verdict({"best_epoch": 1, "epochs_run": 10}, "partial")
    assert fine_tuned.startswith("Fine-tuning did not beat the frozen head (best epoch 1 of 10)")
    frozen = best_epoch_verdict({"best_epoch": 3, "epochs_run": 8}, "frozen")
    assert "epoch 3 of 8" in frozen and "fewer epochs" in frozen
    assert "more epochs may help" in best_epoch_verdict({"best_epoch": 8, "epochs_run": 8}, "full")
    assert best_epoch_verdict({"best_epoch": 1, "epochs_run": 1}, "frozen") is None
