"""CTranslate2 → openai-whisper conversion: exact tensor mapping, and the same transcript from both."""

from __future__ import annotations

import numpy as np
import pytest

from asr_fakes import MEDIA, asr_cache, reference, wer  # noqa: F401 (fixture)
from ingest.asr.crosscheck import verify_same_text
from ingest.convert_whisper import ConversionError, convert, read_ct2, to_openai


@pytest.fixture(scope="module")
def base_dir(asr_cache):
    from ingest.asr.weights import assemble_base

    return assemble_base()


def test_reads_the_bundled_model_and_splits_fused_projections(base_dir):
    ct2 = read_ct2(base_dir)
    assert ct2.spec == "WhisperSpec" and len(ct2.variables) == 212
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    dims, sd = to_openai(ct2)
    assert dims == dict(n_mels=80, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8, n_audio_layer=6,
                        n_vocab=51865, n_text_ctx=448, n_text_state=512, n_text_head=8, n_text_layer=6)
    fused = ct2.variables["encoder/layer_2/self_attention/linear_0/weight"]  # (1536, 512): q; k; v
    np.testing.assert_array_equal(sd["encoder.blocks.2.attn.key.weight"], fused[512:1024].astype(np.float32))
    np.testing.assert_array_equal(sd["encoder.blocks.2.attn.value.bias"],
                                  ct2.variables["encoder/layer_2/self_attention/linear_0/bias"][1024:].astype(np.float32))
    kv = ct2.variables["decoder/layer_5/attention/linear_1/weight"]  # (1024, 512): k; v
    np.testing.assert_array_equal(sd["decoder.blocks.5.cross_attn.value.weight"], kv[512:].astype(np.float32))
    assert "decoder.blocks.5.cross_attn.key.bias" not in sd and "encoder.blocks.0.attn.key.bias" not in sd
    assert all(a.dtype == np.float32 for a in sd.values())


def test_converted_checkpoint_transcribes_like_the_original(base_dir, tmp_path):
    out = tmp_path / "whisper-base.pt"
    report = convert(base_dir, out)
    assert report.tensors == 245 and report.dtype == "float32"
    assert 70e6 < report.parameters < 75e6 and out.stat().st_size > 4 * report.parameters
    check = verify_same_text(base_dir, out, MEDIA / "clean.mp4", language="en", cpu_threads=2)
    assert check.same, f"\nct2: {check.ct2_text}\npt:  {check.pt_text}"
    assert wer(reference("clean"), check.pt_text) <= 0.10


def test_not_a_ct2_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="no model.bin"):
        read_ct2(tmp_path)
    (tmp_path / "model.bin").write_bytes((6).to_bytes(4, "little") + b"\x05\x00abc")
    with pytest.raises(ConversionError, match="truncated or not a CTranslate2 model"):
        read_ct2(tmp_path)
    (tmp_path / "model.bin").write_bytes((2).to_bytes(4, "little"))
    with pytest.raises(ConversionError, match="binary version 2"):
        read_ct2(tmp_path)
