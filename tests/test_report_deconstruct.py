"""The report's deconstruction measures: supermask accuracy and sign stability columns, and the
mask-criteria section with its verdict."""

from experiments import report as report_cli
from lth_keras.paper import report


def _record(index, remaining, accuracy, supermask=None, stability=None):
    record = {
        "round": index,
        "weights_remaining": remaining,
        "metrics": {"test_accuracy": accuracy - 0.01},
        "early_stop_metrics": {"test_accuracy": accuracy},
        "early_stop_step": 100,
    }
    if supermask is not None:
        record["supermask_metrics"] = {"test_accuracy": supermask, "test_loss": 2.0}
        record["sign_stability"] = stability
    return record


def _rows(*accuracies, supermask=(0.1, 0.3), stability=(0.9, 0.95), remaining=(1.0, 0.8)):
    return report.aggregate(
        [[_record(i, remaining[i], a, supermask[i], stability[i]) for i, a in enumerate(accuracies)]]
    )


def test_the_table_shows_supermask_accuracy_and_sign_stability_for_branches_that_have_them():
    old = report.aggregate([[_record(0, 1.0, 0.9), _record(1, 0.8, 0.85)]])  # records before the fields
    table = report.markdown_table({"ticket": _rows(0.9, 0.92), "reinit": old}).splitlines()
    assert table[0] == (
        "| round | weights remaining | ticket acc. @ early stop (%) | ticket acc. @ end (%) | "
        "ticket early-stop it. | ticket supermask acc. (%) | ticket sign stability (%) | "
        "reinit acc. @ early stop (%) | reinit acc. @ end (%) | reinit early-stop it. |"
    )
    assert table[3] == "| 1 | 80.00% | 92.00 | 91.00 | 100 | 30.00 | 95.00 | 85.00 | 84.00 | 100 |"


def test_csv_rows_carry_the_measures_and_are_empty_without_them():
    rows = report.csv_rows(
        "exp", {"ticket": _rows(0.9, 0.92), "reinit": report.aggregate([[_record(0, 1, 0.9)]])}
    )
    assert rows[1]["supermask_accuracy_mean"] == 0.3 and rows[1]["sign_stability_mean"] == 0.95
    assert rows[2]["supermask_accuracy_mean"] is None and list(rows[2]) == report.CSV_COLUMNS


def test_criteria_table_and_verdict_compare_the_tickets_at_their_shared_sparsity():
    tickets = {
        "large_final": _rows(0.90, 0.92, supermask=(0.1, 0.40)),
        "movement": _rows(0.90, 0.93, supermask=(0.1, 0.20)),
        "random": _rows(0.90, 0.85, supermask=(0.1, 0.10)),
        "threshold": _rows(0.90, 0.91, supermask=(0.1, 0.35), remaining=(1.0, 0.55)),
    }
    lines = report.criteria_table(tickets).splitlines()
    assert lines[0].startswith("| mask criterion | round | weights remaining | acc. @ early stop (%)")
    assert lines[2] == "| large_final | 1 | 80.00% | 92.00 | 91.00 | 40.00 | 95.00 |"
    assert lines[5] == "| threshold | 1 | 55.00% | 91.00 | 90.00 | 35.00 | 95.00 |"
    assert report.criteria_verdict(tickets) == (
        "mask criteria at 80.0% of weights remaining: movement best (movement 93.00%, large_final 92.00%, "
        "random 85.00%); best supermask (untrained): large_final 40.00%; threshold at 55.0%: 91.00%"
    )


def test_the_report_adds_the_criteria_section_only_for_experiments_of_several_criteria():
    def experiment(criterion, accuracy):
        return report_cli.Experiment("d", {"ticket": _rows(0.9, accuracy)}, [], "", criterion)

    one = {"a": experiment("large_final", 0.9), "b": experiment("large_final", 0.91)}
    assert report_cli.criteria_section(one) is None
    two = {
        "a": experiment("large_final", 0.9),
        "b": experiment("random", 0.8),
        "c": experiment("random", 0.7),
    }
    section = report_cli.criteria_section(two)
    assert section.startswith("## Mask criteria\n")
    assert (
        "| large_final | 1 |" in section
        and "| random (b) | 1 |" in section
        and "| random (c) | 1 |" in section
    )
    assert "large_final best" in section
