"""The use-case functions of pipeline.api, called as a Python user (and the CLI) calls them."""

from __future__ import annotations

from pathlib import Path

from asr_fakes import MEDIA, asr_cache, fake  # noqa: F401  (fixtures)

from pipeline.api import Progress, estimate, plan, transcribe_batch


def test_transcribe_batch_writes_outputs_and_goes_on_after_a_bad_file(fake, asr_cache, cfg, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a recording")
    done = []

    class Recorder(Progress):
        def file_done(self, outcome):
            done.append((Path(outcome.input).name, outcome.status))

    asr = cfg.asr.model_copy(update={"backend": "fake", "model": "tiny"})
    batch = transcribe_batch([MEDIA / "clean.m4a", bad], cfg, asr, output_dir=tmp_path / "out", formats="srt,txt",
                             progress=Recorder())
    assert done == [("clean.m4a", "done"), ("bad.mp4", "failed")]
    first, second = batch.files
    assert sorted(Path(p).name for p in first.outputs) == ["clean.srt", "clean.txt"]
    assert all(Path(p).is_file() for p in first.outputs) and first.duration > 5 and first.segments > 0
    assert "bad.mp4" in second.error and batch.failed == [second]
    assert batch.as_dict()["files"][1] == {"input": str(bad), "status": "failed", "error": second.error}


def test_estimate_compares_precisions_and_checks_each_on_the_card():
    report = estimate(model="llama-2-7b", precision="all", gpu="RTX 4090")
    assert report.labels[:2] == ["fp32", "bf16"] and set(report.fits) == set(report.labels)
    by_label = dict(zip(report.labels, report.estimates))
    assert by_label["fp32"].total_bytes > 2 * by_label["nf4"].total_bytes
    assert report.fits["fp32"] is False and report.fits["nf4"] is True  # 7B: ~28 GB in fp32 vs a 24 GB card
    assert report.as_dict()["device"]["name"] and report.budget_bytes < report.device.available_bytes


def test_plan_for_a_card_chooses_every_stage():
    result = plan(gpu="T4", context=4096)
    assert set(result.plan.stages) >= {"speech", "embedding", "llm"}
    assert result.devices[0].name and result.as_dict()["devices"][0] == result.devices[0].as_dict()
