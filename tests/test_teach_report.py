"""The learning-curve report: table with intervals and paired tests, and the PNG (benchmarks/teach_report.py)."""

import json

import pytest

from benchmarks.teach_report import _seeds, load_reports, main, table
from sim.stats import exact_mcnemar


def _report(path, outcomes, seed=100):
    details = [{"seed": seed + i, "success": bool(s)} for i, s in enumerate(outcomes)]
    path.write_text(json.dumps({"successes": sum(outcomes), "episodes": len(outcomes), "episodes_detail": details}))


def test_exact_mcnemar_counts_discordant_pairs():
    assert exact_mcnemar([True] * 6, [False] * 6) == (6, 0, pytest.approx(2 / 64))
    assert exact_mcnemar([True, False], [True, False]) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="same episodes"):
        exact_mcnemar([True], [True, False])


def test_table_and_plot(tmp_path):
    _report(tmp_path / "finetuned-20-push-color.json", [1] * 9 + [0])
    _report(tmp_path / "scratch-20-push-color.json", [0] * 10)  # 0 successes: an interval from 0 exactly
    _report(tmp_path / "finetuned-5-push-color.json", [1] * 3 + [0] * 7)
    _report(tmp_path / "finetuned-generated-20-push-color.json", [1] * 10)
    (tmp_path / "notes.json").write_text("{}")  # not a report: ignored
    reports = load_reports(tmp_path)
    assert set(reports) == {("finetuned", 20, "push-color"), ("scratch", 20, "push-color"), ("finetuned", 5, "push-color"),
                            ("finetuned-generated", 20, "push-color")}
    rows = table(reports).splitlines()
    assert rows[2].startswith("| push-color | 5 | the demos | 3/10 |") and "not run" in rows[2]
    assert rows[3].startswith("| push-color | 20 | the demos | 9/10 | [60%, 98%] | 0/10 | [0%, 28%] | 0.0039 (9 vs 0) |")
    assert rows[4].startswith("| push-color | 20 | the demos + generated | 10/10 |") and rows[4].endswith("| not run |  |  |")
    assert _seeds(reports, "push-color") == "10"
    _report(tmp_path / "scratch-5-push-color.json", [0] * 30)
    assert _seeds(load_reports(tmp_path), "push-color") == "10-30"  # the plot's axis says how many seeds
    png = tmp_path / "curve.png"
    assert main([str(tmp_path), "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_directory_without_reports_is_named(tmp_path):
    with pytest.raises(ValueError, match="no ARM-N-TASK.json"):
        load_reports(tmp_path)
