"""`metagan demo` end to end with a handful of steps (the real run is minutes; see the README)."""
import json

import torch

from metagan.cli import main


def test_demo_writes_grid_and_report(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    assert main(["demo", "--out-dir", str(tmp_path), "--steps", "3", "--no-progress"]) == 0
    assert torch.get_num_threads() == threads  # the demo's one thread does not outlive it
    out = capsys.readouterr().out
    assert "| digit-7 |" in out and "| mean |" in out
    run = next(tmp_path.glob("00000-digits-demo"))
    report = json.loads((run / "report.json").read_text())
    assert set(report["per_class"]) == {"digit-7", "digit-8", "digit-9"}
    assert report["steps"] == 3
    assert (report["threads"], report["threads_chosen_by"]) == (1, "model size")  # a small model: one thread
    for v in report["per_class"].values():
        assert 0.0 <= v["fidelity_adapted"] <= 1.0 and v["fidelity_real"] > 0.9 and v["diversity"] > 0
    assert (run / "demo.png").stat().st_size > 0 and (run / "report.md").exists()
