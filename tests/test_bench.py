import json

from vla.cli import main


def test_bench_sim_reports_both_envs(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "sim", "--steps", "3", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    for side in ("ours", "robosuite_default"):
        assert report[side]["steps_per_s"] > 0 and report[side]["reset_s"] > 0
    assert report["step_ratio"] == report["ours"]["steps_per_s"] / report["robosuite_default"]["steps_per_s"]
    assert report["cameras"] == ["agentview", "robot0_eye_in_hand"] and report["image_size"] == 128
    assert "speed-up" in capsys.readouterr().out
