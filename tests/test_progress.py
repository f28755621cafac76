"""Progress in a log: plain lines at 10% steps or after a quiet spell, never carriage-return frames."""

import io

from hawk.progress import LogProgress, progress_bar


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_line_every_tenth_then_a_last_one():
    out, clock = io.StringIO(), Clock()
    with LogProgress(200, "embed RIWH", "spec", out, every=1e9, clock=clock) as bar:
        for _ in range(200):
            clock.t += 0.5
            bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue()
    assert lines[0] == "embed RIWH: 20/200 spec (10%), 2.0/s, ETA 1m30s, 10s so far"
    assert lines[-1].startswith("embed RIWH: 200/200 spec (100%), 2.0/s, 1m40s so far")


def test_a_quiet_spell_writes_a_line_with_the_postfix():
    out, clock = io.StringIO(), Clock()
    bar = LogProgress(10_000, "infer", "file", out, every=30, clock=clock)
    bar.set_postfix_str("0.52 h audio")
    clock.t = 31
    bar.update()
    assert out.getvalue() == "infer: 1/10000 file (0%), 0.0/s, ETA 86h06m, 31s so far [0.52 h audio]\n"
    bar.update()
    bar.close()
    bar.close()
    assert out.getvalue().count("\n") == 2 and out.getvalue().splitlines()[1].startswith("infer: 2/10000")


def test_no_total_and_nothing_done():
    out, clock = io.StringIO(), Clock()
    with LogProgress(None, "download", "file", out, clock=clock) as bar:
        pass
    assert out.getvalue() == ""
    bar = LogProgress(None, "download", "file", out, every=0, clock=clock)
    bar.update(3)
    assert out.getvalue().startswith("download: 3 file, ")


def test_bars_follow_the_output(capsys):
    assert isinstance(progress_bar(5, "x"), LogProgress)  # pytest's captured stderr is no terminal
    assert not isinstance(progress_bar(5, "x", enabled=False), LogProgress)
