"""Media decoding with PyAV: any container → 16 kHz mono float32, streamed; one clear error per bad file."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from asr_fakes import MEDIA
from ingest.media import SAMPLE_RATE, is_media, load_audio, probe, stream_audio
from syllabus_common.errors import IngestError


@pytest.fixture(scope="module")
def clean_audio():
    return load_audio(MEDIA / "clean.m4a")


def _envelope(audio: np.ndarray, frame: int = 1600) -> np.ndarray:
    n = len(audio) // frame
    return np.sqrt(np.square(audio[: n * frame].reshape(n, frame)).mean(axis=1))  # (n,) RMS per 0.1 s


def _encode(samples: np.ndarray, path, fmt: str, codec: str, rate: int = SAMPLE_RATE, video: bool = False):
    """Write float samples with PyAV: ``codec`` audio in container ``fmt`` (+ a tiny video track)."""
    with av.open(str(path), "w", format=fmt) as out:
        if video:
            vs = out.add_stream("mpeg4", rate=1)
            vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "stereo"  # decoding must downmix
        if video:
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = 0, Fraction(1, 1)
            for p in list(vs.encode(frame)) + list(vs.encode(None)):
                out.mux(p)
        stereo = np.stack([samples, samples]).astype(np.float32)  # (2, n)
        fmt_name = stream.codec_context.format.name
        step = stream.codec_context.frame_size or 1024
        for i in range(0, stereo.shape[1], step):
            block = stereo[:, i:i + step]
            if fmt_name == "s16":
                frame = av.AudioFrame.from_ndarray((block.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout="stereo")
            elif fmt_name == "s16p":
                frame = av.AudioFrame.from_ndarray((block * 32767).astype(np.int16), format="s16p", layout="stereo")
            elif fmt_name == "flt":
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T.reshape(1, -1)), format="flt", layout="stereo")
            else:  # fltp
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)


def test_fixtures_are_mp4_with_video_and_m4a_audio_only():
    mp4, m4a = probe(MEDIA / "clean.mp4"), probe(MEDIA / "clean.m4a")
    assert mp4.has_video and not m4a.has_video
    assert mp4.codec == m4a.codec == "aac"
    assert 10 < mp4.duration < 15 and probe(MEDIA / "lecture.m4a").duration >= 60


def test_decode_gives_16k_mono_float32_matching_duration(clean_audio):
    info = probe(MEDIA / "clean.mp4")
    audio = load_audio(MEDIA / "clean.mp4")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SAMPLE_RATE - info.duration) < 0.1
    assert 0.05 < np.abs(audio).max() <= 1.0
    np.testing.assert_allclose(audio, clean_audio, atol=1e-6)  # same AAC stream in both containers


@pytest.mark.parametrize("fmt,codec,ext", [
    ("matroska", "libopus", "mkv"), ("webm", "libopus", "webm"), ("mov", "aac", "mov"), ("mp3", "libmp3lame", "mp3"),
    ("wav", "pcm_s16le", "wav"), ("flac", "flac", "flac"), ("ogg", "libopus", "ogg"), ("ipod", "aac", "m4a"),
])
def test_every_container_decodes_to_the_same_speech(tmp_path, clean_audio, fmt, codec, ext):
    source = clean_audio[: 4 * SAMPLE_RATE]
    rate = 48_000 if codec == "libopus" else 44_100 if codec == "libmp3lame" else 22_050
    # Resample to the codec's rate first so decoding has to convert rate and channels back.
    up = np.interp(np.arange(0, len(source), SAMPLE_RATE / rate), np.arange(len(source)), source).astype(np.float32)
    path = tmp_path / f"clip.{ext}"
    _encode(up, path, fmt, codec, rate=rate, video=ext in ("mkv", "mov"))
    assert is_media(path)
    back = load_audio(path)
    assert abs(len(back) - len(source)) < 0.1 * SAMPLE_RATE
    a, b = _envelope(source), _envelope(back)
    n = min(len(a), len(b))
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.9, f"{ext}: loudness envelope differs from the source"


def test_stream_is_bounded_blocks_that_add_up_to_the_whole():
    blocks = list(stream_audio(MEDIA / "lecture.m4a", block_seconds=5))
    assert max(len(b) for b in blocks) == 5 * SAMPLE_RATE  # never more than one block in memory at once
    whole = load_audio(MEDIA / "lecture.m4a")
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_start_offset_lands_on_the_same_samples():
    whole = load_audio(MEDIA / "lecture.m4a")
    tail = load_audio(MEDIA / "lecture.m4a", start=20.0)
    probe_ = whole[20 * SAMPLE_RATE: 21 * SAMPLE_RATE]
    lag = int(np.argmax(np.correlate(tail[:2 * SAMPLE_RATE], probe_, mode="valid")))
    assert lag <= 0.005 * SAMPLE_RATE  # within 5 ms
    assert abs(len(tail) - (len(whole) - 20 * SAMPLE_RATE)) < 0.05 * SAMPLE_RATE


def _video_only(path):
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("mpeg4", rate=1)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = 0, Fraction(1, 1)
        for p in list(vs.encode(frame)) + list(vs.encode(None)):
            out.mux(p)
    return path


def _zero_length(path):
    import wave

    with wave.open(str(path), "wb") as w:  # a valid WAV header and no samples
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
    return path


@pytest.mark.parametrize("case,expected", [
    ("empty.mp3", "empty file"),
    ("notes.mp4", "not a media file"),
    ("cut.mp4", "not a media file or a damaged container"),
    ("silent-video.mp4", "no audio stream"),
    ("zero.wav", "no audio samples"),
    ("missing.wav", "no such file"),
])
def test_bad_media_is_one_clear_error_naming_the_file(tmp_path, case, expected):
    path = tmp_path / case
    if case == "empty.mp3":
        path.write_bytes(b"")
    elif case == "notes.mp4":
        path.write_text("these are my lecture notes, not a video\n" * 20)
    elif case == "cut.mp4":
        data = (MEDIA / "clean.mp4").read_bytes()
        path.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    elif case == "silent-video.mp4":
        _video_only(path)
    elif case == "zero.wav":
        _zero_length(path)
    with pytest.raises(IngestError) as info:
        load_audio(path)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message


def test_is_media_by_extension_or_by_probing(tmp_path):
    bare = tmp_path / "recording"
    bare.write_bytes((MEDIA / "clean.m4a").read_bytes())
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    pdf_without_extension = tmp_path / "book"
    pdf_without_extension.write_bytes(b"%PDF-1.7\n")
    assert is_media(MEDIA / "clean.mp4") and is_media(bare)
    assert not is_media(text) and not is_media(pdf_without_extension)
    assert not is_media(_video_only(tmp_path / "video-only.bin"))
