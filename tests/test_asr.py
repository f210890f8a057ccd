"""Speech-to-text: real faster-whisper with the bundled models on the committed clips; the runner's
logic (blocks, language, resume after SIGKILL) with a fake backend registered through the real registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from asr_fakes import MEDIA, FakeBackend, asr_cache, fake, reference, wer  # noqa: F401 (fixtures)
from conftest import ROOT, run_cli
from ingest.asr import DecodeOptions, ModelOptions, available_backends, load_backend, transcribe_file
from syllabus_common.errors import ConfigError, ModelNotAvailable


@pytest.fixture(scope="module")
def base(asr_cache):
    return load_backend("faster-whisper", ModelOptions(model="base", device="cpu"))


def _check_timeline(t):
    starts = [s.start for s in t.segments]
    assert starts == sorted(starts), "segment starts must increase"
    assert all(0 <= s.start <= s.end <= t.duration + 1e-6 for s in t.segments)


# ----- real models

def test_clean_clip_wer_with_bundled_base_is_at_most_10_percent(base, tmp_path):
    assert (base.model_name, base.device, base.compute_type) == ("whisper-base", "cpu", "int8")
    t = transcribe_file(MEDIA / "clean.mp4", base, DecodeOptions(), tmp_path / "ck.jsonl")
    score = wer(reference("clean"), t.text)
    assert score <= 0.10, f"WER {score:.1%}: {t.text}"
    assert t.language == "en" and t.language_probability > 0.5
    _check_timeline(t)
    assert 10 < t.duration < 15


def test_noisy_clip_is_still_understood(base):
    t = transcribe_file(MEDIA / "noisy.m4a", base, DecodeOptions(language="en"))
    score = wer(reference("noisy"), t.text)
    assert score <= 0.25, f"WER {score:.1%} with noise: {t.text}"


def test_tiny_en_word_timestamps_sit_inside_their_segments(asr_cache):
    tiny = load_backend("faster-whisper", ModelOptions(model="tiny.en", device="cpu"))
    t = transcribe_file(MEDIA / "clean.m4a", tiny, DecodeOptions(word_timestamps=True))
    assert wer(reference("clean"), t.text) <= 0.15
    words = [w for s in t.segments for w in s.words]
    assert len(words) >= 20
    for s in t.segments:
        assert all(s.start - 0.05 <= w.start <= w.end <= s.end + 0.05 for w in s.words)
    assert [w.start for w in words] == sorted(w.start for w in words)


def test_repetition_guards_and_vad_reach_faster_whisper(base, monkeypatch):
    seen = {}
    real = base.model.transcribe

    def spy(audio, **kwargs):
        seen.update(kwargs)
        return real(audio, **kwargs)

    monkeypatch.setattr(base.model, "transcribe", spy)
    segments, detected = base.transcribe(np.zeros(16_000, np.float32), DecodeOptions())
    list(segments)
    assert seen["vad_filter"] is True
    assert seen["compression_ratio_threshold"] == 2.4 and seen["log_prob_threshold"] == -1.0
    assert seen["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert seen["prompt_reset_on_temperature"] == 0.0  # no conditioning on previous text after any fallback
    assert seen["beam_size"] == 3


class _CountingEncoder:
    """Stands in front of the real CTranslate2 encoder and counts its passes."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def encode(self, *args, **kwargs):
        self.calls += 1
        return self.real.encode(*args, **kwargs)


def test_language_detection_reuses_the_first_window_encoding(base, monkeypatch):
    counter = _CountingEncoder(base.model._encoder)
    monkeypatch.setattr(base.model, "_encoder", counter)
    for expected in (1, 2):
        t = transcribe_file(MEDIA / "clean.m4a", base, DecodeOptions(language=None))
        assert t.language == "en"
        # one 30 s window: detection and transcription share one encoder pass (faster-whisper alone
        # does two); a second call on the same audio encodes again (nothing carries over between calls)
        assert counter.calls == expected


def test_encoder_and_decoder_threads_are_split_on_cpu(base, asr_cache):
    from ingest.asr.faster import cpu_thread_split

    cores = len(os.sched_getaffinity(0))
    assert cpu_thread_split(0, 0, "cpu") == (cores, 1)
    assert cpu_thread_split(3, 2, "cpu") == (3, 2)
    assert cpu_thread_split(3, 2, "cuda") == (0, 0)
    assert base.threads == (cores, 1)
    assert (base.model._encoder is not base.model.model) == (cores > 1)
    # one model instance when both halves want the same threads; the text does not depend on the split
    single = load_backend("faster-whisper", ModelOptions(model="base", device="cpu", cpu_threads=2, decoder_threads=2))
    assert single.model._encoder is single.model.model
    options = DecodeOptions(language="en")
    split_text = transcribe_file(MEDIA / "clean.m4a", base, options).text
    assert split_text == transcribe_file(MEDIA / "clean.m4a", single, options).text
    assert wer(reference("clean"), split_text) <= 0.10


def test_bundled_base_is_joined_once_and_verified(asr_cache, base):
    from ingest.asr.weights import BASE_SHA256, BASE_SIZE, assemble_base

    folder = assemble_base()
    model_bin = folder / "model.bin"
    assert model_bin.stat().st_size == BASE_SIZE
    assert (folder / "model.bin.sha256").read_text().strip() == BASE_SHA256
    mtime = model_bin.stat().st_mtime_ns
    assert assemble_base() == folder and model_bin.stat().st_mtime_ns == mtime  # reused, not rewritten


def test_damaged_joined_model_is_rebuilt(tmp_path):
    from ingest.asr.weights import BASE_SIZE, assemble_base

    folder = assemble_base(tmp_path)
    with (folder / "model.bin").open("r+b") as fh:
        fh.truncate(1000)
    assert (assemble_base(tmp_path) / "model.bin").stat().st_size == BASE_SIZE


def test_precision_fallback_is_loud_and_auto_picks_int8_on_cpu():
    from ingest.asr.faster import resolve_compute_type

    notes = []
    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("float16", "cpu", notes.append) == "float32"
    assert notes == ["float16 is not supported on cpu; using float32 instead"]


def test_cuda_without_a_gpu_is_a_clear_error():
    import ctranslate2

    from ingest.asr.faster import resolve_device

    if ctranslate2.get_cuda_device_count():
        pytest.skip("a GPU is present")
    assert resolve_device("auto") == ("cpu", 0)
    with pytest.raises(ModelNotAvailable, match="use --device cpu or auto"):
        resolve_device("cuda")


def test_unknown_backend_and_model_list_the_choices(asr_cache):
    with pytest.raises(ConfigError, match="valid: faster-whisper, openai-whisper"):
        load_backend("whisperx", ModelOptions())
    with pytest.raises(ModelNotAvailable, match="offline mode is on"):
        load_backend("faster-whisper", ModelOptions(model="large-v3", device="cpu"))
    assert {"faster-whisper", "openai-whisper"} <= set(available_backends())


# ----- runner logic with the fake backend

def _bursts(path, seconds: float, gap: tuple[float, float]):
    """Noise everywhere except a silent ``gap``; written as WAV with PyAV."""
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(seconds * 16_000)) * 0.2).astype(np.float32)
    audio[int(gap[0] * 16_000):int(gap[1] * 16_000)] = 0
    with av.open(str(path), "w", format="wav") as out:
        s = out.add_stream("pcm_s16le", rate=16_000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray((audio * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 16_000, 0, Fraction(1, 16_000)
        for p in list(s.encode(frame)) + list(s.encode(None)):
            out.mux(p)
    return path


def test_blocks_are_cut_in_silence_and_the_first_block_fixes_the_language(fake, tmp_path):
    clip = _bursts(tmp_path / "bursts.wav", 75, gap=(56.5, 57.2))
    backend = load_backend("fake", ModelOptions())
    t = transcribe_file(clip, backend, DecodeOptions(language=None), block_seconds=60)
    (first, opts1), (second, opts2) = fake.calls
    assert 56.5 <= first <= 57.2, f"cut at {first:.2f} s, not in the silent gap"
    assert abs(first + second - 75) < 0.01
    assert opts1.language is None and opts2.language == "en"
    _check_timeline(t)
    # The fake tiles each block with segments: the file is covered end to end with no overlap.
    assert all(abs(a.end - b.start) < 1e-6 for a, b in zip(t.segments, t.segments[1:]))
    assert t.segments[-1].end == pytest.approx(75, abs=0.01)


def test_forced_chinese_is_converted_to_traditional(fake, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    FakeBackend.text, FakeBackend.language = "我们的内存", "zh"
    try:
        result = CliRunner().invoke(app, ["--kb", str(tmp_path / "kb"), "transcribe", str(MEDIA / "clean.m4a"), "-o",
                                          str(tmp_path), "--backend", "fake", "--language", "zh", "--zh-variant", "tw",
                                          "--format", "txt,json", "--json"])
    finally:
        FakeBackend.text, FakeBackend.language = "part", "en"
    assert result.exit_code == 0, result.output
    assert all(opts.language == "zh" for _, opts in fake.calls)  # forced, never detected
    lines = (tmp_path / "clean.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "我們的記憶體 0"
    assert json.loads((tmp_path / "clean.json").read_text())["language"] == "zh"


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import asr_fakes
asr_fakes.register_fake()
from pipeline.cli import main
main(sys.argv[1:])
"""


def test_resume_after_sigkill_mid_file(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(tests=str(ROOT / "tests")))
    args = [sys.executable, str(script), "--kb", str(tmp_path / "kb"), "transcribe", str(MEDIA / "lecture.m4a"),
            "-o", str(tmp_path / "out"), "--backend", "fake", "--format", "json", "--json"]
    checkpoint = tmp_path / "out" / ".lecture.partial.jsonl"
    env = dict(os.environ, FAKE_ASR_DELAY="0.15")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if checkpoint.exists() and checkpoint.read_text().count('"type": "segment"') >= 5:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "lecture.json").exists(), "killed before it finished"
    done = checkpoint.read_text().count('"type": "segment"')
    assert 5 <= done < 31

    env["FAKE_ASR_DELAY"] = "0"
    result = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)["files"][0]
    assert report["resumed_at"] == pytest.approx(2.0 * done, abs=1e-6)
    segments = json.loads((tmp_path / "out" / "lecture.json").read_text())["segments"]
    # Nothing lost, nothing twice: the segments tile the whole lecture.
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(report["duration"], abs=0.01)
    assert all(abs(a["end"] - b["start"]) < 1e-3 for a, b in zip(segments, segments[1:]))
    assert not checkpoint.exists(), "the checkpoint is removed once the outputs are written"


# ----- the command line

def test_cli_batch_writes_every_format_and_reports_bad_files(asr_cache, tmp_path):
    talk = tmp_path / "talk.m4a"
    talk.write_bytes((MEDIA / "clean.m4a").read_bytes())
    notes = tmp_path / "notes.mp3"
    notes.write_text("not audio")
    result = run_cli("--kb", str(tmp_path / "kb"), "transcribe", str(MEDIA / "clean.mp4"), str(notes), str(talk),
                     "-o", str(tmp_path / "out"), "--model", "tiny.en", "--json", env={"SYLLABUS_CACHE": str(asr_cache)})
    assert result.returncode == 1, result.stderr[-2000:]  # one file failed
    report = json.loads(result.stdout)
    assert [f["status"] for f in report["files"]] == ["done", "failed", "done"]
    assert report["files"][1]["error"] == f"{notes}: not a media file or a damaged container (Invalid data found when processing input)"
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"{stem}.{ext}" for stem in ("clean", "talk") for ext in ("srt", "vtt", "txt", "json"))
    assert report["compute_type"] == "int8" and report["files"][0]["real_time_factor"] > 0
    assert report["threads"] == {"encoder": len(os.sched_getaffinity(0)), "decoder": 1}


def test_cli_batch_of_missing_files_fails_without_loading_a_model(tmp_path):
    missing = [tmp_path / "lecture 1.mp3", tmp_path / "lecture 2.m4a"]
    result = run_cli("--kb", str(tmp_path / "kb"), "transcribe", *map(str, missing), "--json")
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert [(f["status"], f["error"]) for f in report["files"]] == [("failed", f"{m}: no such file") for m in missing]
    assert report["device"] == "not loaded" and report["load_seconds"] == 0.0
    wrong = run_cli("--kb", str(tmp_path / "kb"), "transcribe", str(missing[0]), "--model", "no-such-whisper")
    assert wrong.returncode == 2 and "no-such-whisper" in wrong.stderr  # a wrong model is still named


def test_help_imports_no_speech_library():
    code = (
        "import sys\nfrom pipeline.cli import app\n"
        "for args in (['--help'], ['transcribe', '--help'], ['convert-whisper', '--help']):\n"
        "    try:\n        app(args, prog_name='syllabus')\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('torch', 'whisper', 'faster_whisper', 'ctranslate2', 'av', 'opencc') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "syllabus transcribe lecture.mp4" in result.stdout and "syllabus convert-whisper" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-300:]
