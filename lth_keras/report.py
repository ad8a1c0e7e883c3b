"""Text rendering of a lottery run's round records."""

from typing import Any, Dict, Iterable, Optional


def format_rounds_table(rounds: Iterable[Dict[str, Any]], accuracy_key: Optional[str] = None) -> str:
    """A Markdown table: round, weights remaining, accuracy, early-stop step.

    `accuracy_key` picks the metric shown (default: the first of test_accuracy,
    val_accuracy, accuracy that the records have).
    """
    rounds = list(rounds)
    if accuracy_key is None:
        keys = ("test_accuracy", "val_accuracy", "accuracy")
        accuracy_key = next((k for k in keys if rounds and k in rounds[0]["metrics"]), "accuracy")
    lines = [
        f"| round | weights remaining | {accuracy_key} | early-stop step |",
        "|---:|---:|---:|---:|",
    ]
    for record in rounds:
        accuracy = record["metrics"].get(accuracy_key)
        accuracy_text = "" if accuracy is None else f"{accuracy:.4f}"
        early = record.get("early_stop_step")
        lines.append(
            f"| {record['round']} | {100 * record['weights_remaining']:.2f}% | {accuracy_text} | "
            f"{'' if early is None else early} |"
        )
    return "\n".join(lines)
