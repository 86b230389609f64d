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


def test_bench_inference_with_a_backbone_reports_both_modes_training_and_memory(tmp_path, capsys):
    """`vla bench inference --backbone DIR` on a tiny Qwen2-VL: the tiny default, full fine-tuning and LoRA,
    each in a fresh process."""
    from hf_tiny_checkpoints import write_checkpoint

    backbone = write_checkpoint("qwen2_vl", tmp_path / "qwen2-vl")
    path = tmp_path / "bench.json"
    assert main(["bench", "inference", "--backbone", backbone, "--repeats", "2", "--train-steps", "1",
                 "--batch-size", "2", "--threads", "1", "--quiet", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    names = [row["variant"]["name"] for row in report["rows"]]
    assert names == ["tiny default", "full fine-tuning", "LoRA r=16"]
    for row in report["rows"]:
        assert row["parallel"]["p50_ms"] > 0 and row["autoregressive"]["p99_ms"] >= row["autoregressive"]["p50_ms"]
        assert row["train_samples_per_s"] > 0
        assert 0 < row["peak_rss_mib_baseline"] <= row["peak_rss_mib_inference"] <= row["peak_rss_mib_training"]
    full, lora = report["rows"][1:]
    assert lora["trainable_parameters"] < full["trainable_parameters"] == full["parameters"]
    assert "LoRA r=16" in capsys.readouterr().out


def test_backbone_is_only_for_bench_inference(capsys):
    assert main(["bench", "sim", "--backbone", "/some/dir"]) == 2
    assert "--backbone belongs to `vla bench inference`" in capsys.readouterr().err
