"""What a run prints while it trains: round lines on lines of their own, and (on a terminal only)
a progress bar with the round and replicate."""

import dataclasses
import io
import sys

import pytest

import lth_keras
from experiments import progress_bar, runner
from tests.conftest import compile_model, dense_data, dense_model
from tests.helpers.lenet_runs import SMALL_LENET


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def screen(text: str):
    """The lines a terminal would show for `text`: \\r goes back to the line's start, \\b one column."""
    lines, line, column = [], [], 0
    for char in text:
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif char == "\r":
            column = 0
        elif char == "\b":
            column = max(0, column - 1)
        else:
            line[column : column + 1] = [char]
            column += 1
    return lines + ["".join(line).rstrip()]


def round_lines(lines):
    return [line for line in lines if "% weights remaining" in line]


# --- the callback beside Keras's progress bar ------------------------------------------


@pytest.mark.parametrize(
    "callback_kwargs,rounds",
    [
        ({"epochs_per_round": 1}, 2),
        ({"steps_per_round": 4}, 4),  # rounds end mid-epoch (8 steps an epoch)
    ],
    ids=["epoch_rounds", "mid_epoch_rounds"],
)
def test_round_lines_start_their_own_line_beside_keras_progress_bar(capsys, callback_kwargs, rounds):
    model = compile_model(lth_keras.prune_for_lottery(dense_model(), pruning_rate=0.2))
    ticket = lth_keras.LotteryTicketCallback(verbose=1, **callback_kwargs)
    x, y = dense_data()
    model.fit(x, y, batch_size=32, epochs=2, validation_data=(x, y), callbacks=[ticket], verbose=1)
    raw_lines = capsys.readouterr().out.split("\n")
    said = round_lines(raw_lines)
    assert [line.split(":")[0] for line in said] == [f"round {r}" for r in range(rounds)]
    assert said == [lth_keras.callback.format_round(record) for record in ticket.rounds]  # nothing before


# --- the experiment scripts' progress bar ------------------------------------------------


def test_position_counts_rounds_and_replicates_from_one():
    assert (
        progress_bar.Position(rounds=3, replicate=1, replicates=2).label(0)
        == "round 1 of 3, replicate 2 of 2"
    )


def test_bar_shows_steps_and_eta_from_this_fits_pace():
    terminal, clock = FakeTerminal(), FakeClock()
    bar = progress_bar.ProgressBar(terminal, clock=clock)
    bar.start("round 1 of 3, replicate 1 of 1", 100, done=50)  # resumed halfway
    clock.now = 5.0
    bar.update(60)  # 10 steps in 5 s: 40 left take 20 s
    line = screen(terminal.getvalue())[-1]
    assert line.startswith("round 1 of 3, replicate 1 of 1 [=") and line.endswith("] 60/100 steps, ETA 0:20")


def test_bar_text_fills_by_steps_done_and_narrows_to_fit_the_terminal():
    wide = progress_bar.bar_text("round 1 of 3, replicate 1 of 1", 60, 100, 20.0, columns=200)
    assert wide == "round 1 of 3, replicate 1 of 1 [==================>...........] 60/100 steps, ETA 0:20"
    text = progress_bar.bar_text("round 12 of 20, replicate 3 of 5", 12000, 50000, 3723.0, columns=79)
    assert len(text) <= 79 and text.endswith("12000/50000 steps, ETA 1:02:03") and "[==" in text


def test_a_printed_line_replaces_the_bar_and_the_bar_comes_back_below():
    terminal, clock = FakeTerminal(), FakeClock()
    bar = progress_bar.ProgressBar(terminal, clock=clock)
    bar.start("round 1 of 2, replicate 1 of 1", 40)
    bar.update(20)
    bar.print_line("a line")
    bar.update(30)
    assert screen(terminal.getvalue())[0] == "a line"
    assert "30/40 steps" in screen(terminal.getvalue())[1]
    bar.finish()
    assert screen(terminal.getvalue()) == ["a line", ""]


def test_bar_writes_nothing_when_not_a_terminal():
    stream = io.StringIO()
    bar = progress_bar.ProgressBar(stream)
    bar.start("round 1 of 2, replicate 1 of 1", 40)
    bar.update(20)
    bar.print_line("a line")
    bar.finish()
    assert stream.getvalue() == "a line\n"


# Two replicates of one round each (40 steps in 4 intervals).
TWO_REPLICATES = dataclasses.replace(SMALL_LENET, prune_iters=0, replicates=2)


def test_an_experiment_shows_round_and_replicate_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    runner.train_and_evaluate(dataclasses.replace(TWO_REPLICATES, output_dir=str(tmp_path / "terminal")))
    monkeypatch.undo()
    raw = terminal.getvalue()
    for replicate in (1, 2):
        assert f"round 1 of 1, replicate {replicate} of 2 [" in raw
    assert "40/40 steps" in raw
    lines = screen(raw)
    assert [line.split(":")[0] for line in round_lines(lines)] == ["round 0", "round 0"]
    assert not [line for line in lines if "steps" in line]  # each bar was cleared

    capsys.readouterr()
    runner.train_and_evaluate(dataclasses.replace(TWO_REPLICATES, output_dir=str(tmp_path / "captured")))
    out = capsys.readouterr().out
    assert "\r" not in out and "replicate 1 of 2" not in out
    assert [line.split(":")[0] for line in round_lines(out.splitlines())] == ["round 0", "round 0"]
