"""Each estimator formula against values computed by hand from its source."""

from __future__ import annotations

import pytest

from syllabus_common.errors import ConfigError
from pipeline.planner import GiB
from pipeline.planner.catalog import DecoderArch, get_card, get_model
from pipeline.planner.estimator import (Settings, estimate, korthikanti_gpt_layer, kv_cache_bytes, lora_params,
                                        optimizer_bytes, weight_bytes)
from pipeline.planner.precision import (awq_bits, bnb_4bit_bits, gguf_tensor_type, gguf_type_bits, gptq_bits,
                                        parse_precision)
from pipeline.planner.seed import seed_rule


def test_bnb_4bit_constants_match_qlora_paper():
    # QLoRA §3: absmax in fp32 per 64 weights = 32/64 = 0.5 bit; double quantization
    # 8/64 + 32/(64*256) = 0.127 bit per weight.
    assert bnb_4bit_bits(double_quant=False) == pytest.approx(4.5)
    assert bnb_4bit_bits(double_quant=True) == pytest.approx(4 + 0.125 + 0.001953125)
    assert bnb_4bit_bits(double_quant=True) - 4 == pytest.approx(0.127, abs=5e-4)


def test_gptq_and_awq_group_overheads():
    # 4-bit weights + fp16 scale and 4-bit zero per group of 128 (+ int32 g_idx per input row for GPTQ).
    assert awq_bits(4, 128) == pytest.approx(4 + 20 / 128)
    assert gptq_bits(4, 128, out_features=4096, in_features=4096) == pytest.approx(4 + 20 / 128 + 32 / 4096)
    assert gptq_bits(8, 64, 1024, 1024) == pytest.approx(8 + 24 / 64 + 32 / 1024)


@pytest.mark.parametrize("name,bits", [("Q4_0", 4.5), ("Q4_1", 5.0), ("Q8_0", 8.5), ("Q4_K", 4.5), ("Q6_K", 6.5625),
                                       ("Q2_K", 2.625), ("F16", 16.0)])
def test_gguf_bits_per_weight_from_block_structs(name, bits):
    # ggml-common.h: e.g. block_q4_K = 2 fp16 + 12 B scales + 128 B quants per 256 weights = 144 B.
    assert gguf_type_bits(name) == pytest.approx(bits)


def test_gguf_q4_k_m_gives_more_bits_to_v_and_down_in_some_layers():
    # llama.cpp use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2 -> Q6_K.
    types = [gguf_tensor_type("Q4_K_M", "ffn_down", i, 32, 14336, tied=False, gqa=4) for i in range(32)]
    expected = {i for i in range(32) if i < 4 or i >= 28 or (i - 4) % 3 == 2}
    assert {i for i, t in enumerate(types) if t == "Q6_K"} == expected
    assert set(types) == {"Q6_K", "Q4_K"}
    assert gguf_tensor_type("Q4_K_M", "output", 0, 32, 4096, tied=False, gqa=4) == "Q6_K"
    # A row of 576 is not a multiple of 256: k-quants fall back (Q6_K -> Q8_0), as in the bundled file.
    assert gguf_tensor_type("Q4_1", "token_embd", 0, 30, 576, tied=True, gqa=3) == "Q8_0"


def test_gguf_estimate_reproduces_the_bundled_file_exactly():
    from gguf import GGUFReader

    from syllabus_common.models import bundled_path

    reader = GGUFReader(str(bundled_path("SmolLM2-135M-Instruct")))
    actual = sum(int(t.n_bytes) for t in reader.tensors)
    assert weight_bytes(get_model("smollm2-135m"), parse_precision("Q4_1"))[0] == actual


def test_weights_float_and_quantized():
    llama = get_model("llama-2-7b")
    assert llama.params() == 6_738_415_616  # Meta's published count
    assert weight_bytes(llama, parse_precision("bf16"))[0] == 6_738_415_616 * 2
    assert weight_bytes(llama, parse_precision("fp32"))[0] == 6_738_415_616 * 4
    # nf4 with double quant: block linears at 4.127 bit; embeddings, head and norms stay 16 bit.
    linear = 32 * llama.block_linear_params()
    other = llama.params() - linear
    expected = linear * bnb_4bit_bits(True) / 8 + other * 2
    assert weight_bytes(llama, parse_precision("nf4", double_quant=True))[0] == pytest.approx(expected, rel=1e-9)


def test_kv_cache_mha_gqa_and_sliding_window():
    # Llama-2-7B (MHA): 2 * 32 layers * 4096 tokens * 4096 * 2 B = 2 GiB.
    assert kv_cache_bytes(get_model("llama-2-7b"), 1, 4096, 2)[0] == 2 * GiB
    # Llama-3-8B (8 KV heads of 128): 2 * 32 * 8192 * 1024 * 2 B = 1 GiB.
    assert kv_cache_bytes(get_model("llama-3-8b"), 1, 8192, 2)[0] == 1 * GiB
    # Gemma-2-9B: 21 global layers at 8192 + 21 local layers capped at the 4096 window.
    g = get_model("gemma-2-9b")
    assert kv_cache_bytes(g, 2, 8192, 2)[0] == 2 * 2 * (21 * 8192 + 21 * 4096) * (8 * 256) * 2


def test_korthikanti_gpt_layer():
    s, b, h, a = 2048, 1, 4096, 32
    assert korthikanti_gpt_layer(s, b, h, a) == s * b * h * 34 + 5 * a * s * s * b
    assert korthikanti_gpt_layer(s, b, h, a, "selective") == 34 * s * b * h
    assert korthikanti_gpt_layer(s, b, h, a, "full") == 2 * s * b * h


def test_optimizer_states():
    n = 1_000_000
    assert optimizer_bytes(None, n, "adamw", 4)[0] == 8 * n
    assert optimizer_bytes(None, n, "adamw8bit", 4)[0] == int(n * (2 + 8 / 256))
    assert optimizer_bytes(None, n, "sgd", 4)[0] == 4 * n
    # Adafactor: one 1000x1000 matrix -> 2000 factored values.
    assert optimizer_bytes(None, n, "adafactor", 4, [(1000, 1000)])[0] == 2000 * 4


def test_lora_parameter_count_matches_peft():
    # peft prints "trainable params: 4,194,304" for Llama-2-7B, r=8 on q_proj and v_proj.
    assert lora_params(get_model("llama-2-7b"), 8, ("q_proj", "v_proj")) == 4_194_304
    with pytest.raises(ConfigError, match="valid"):
        lora_params(get_model("llama-2-7b"), 8, ("nope",))


def test_mixed_precision_full_finetune_is_16_bytes_per_param():
    arch = get_model("llama-2-7b")
    est = estimate(arch, Settings(mode="full", precision="bf16", seq=16, overhead=False))
    states = est.get("weights") + est.get("optimizer") + est.get("gradients")
    if not est.get("gradients"):  # peak at start of backward: gradients not all there
        states += arch.params() * 4
    assert states == arch.params() * 16
    pure = estimate(arch, Settings(mode="full", precision="bf16", master_weights=False, seq=16, overhead=False))
    assert pure.get("weights") == arch.params() * 2


def test_activations_grow_with_tokens_and_flash_removes_s_squared():
    arch = get_model("llama-3.2-1b")
    # LoRA: the peak is at the start of backward, so all activations are in the breakdown.
    a1 = estimate(arch, Settings(mode="lora", seq=1024, overhead=False)).get("activations")
    a2 = estimate(arch, Settings(mode="lora", seq=2048, overhead=False)).get("activations")
    assert a1 > 0 and a2 == pytest.approx(2 * a1, rel=0.01)  # linear in s with SDPA/flash
    eager = estimate(arch, Settings(mode="lora", seq=2048, attention="eager", overhead=False)).get("activations")
    assert eager > a2 * 1.5  # the s^2 scores
    ckpt = estimate(arch, Settings(mode="lora", seq=2048, grad_ckpt=True, overhead=False)).get("activations")
    assert ckpt < a2 / 5


def test_llama_layer_terms_by_hand():
    from pipeline.planner.estimator import train_layer_activations

    # bf16 without autocast, h=q=512, kv=128, I=1536: 2 norms x (4+2)h + 2 x 2h inputs + 2(2q+2kv)
    # + 4 x 2I = 6144 + 2048 + 2560 + 12288 = 23040 B/token, plus 4 B x 8 heads of log-sum-exp.
    arch = DecoderArch("t", 512, 2, 8, 2, 1536, 8192, 4096)
    per_token, _ = train_layer_activations(arch, "pure", 2, "sdpa", 1024)
    assert per_token == 23040 + 32


def test_breakdown_adds_up_and_reports_gib_and_gb():
    est = estimate(get_model("qwen2.5-7b"), Settings(mode="qlora", precision="nf4", seq=2048, batch=2, grad_ckpt=True))
    d = est.as_dict()
    assert d["total_bytes"] == sum(c["bytes"] for c in d["components"])
    assert d["total_gib"] == pytest.approx(est.total_bytes / 2**30, abs=1e-3)
    assert d["total_gb"] == pytest.approx(est.total_bytes / 1e9, abs=1e-3)
    assert {"weights", "adapters", "optimizer", "activations", "cuda_context"} <= {c["key"] for c in d["components"]}
    assert all(c["source"] for c in d["components"])


def test_whisper_and_embedder_estimates():
    w = estimate(get_model("whisper-large-v3"), Settings(precision="fp16", beam=5))
    assert w.get("kv_cache") == 2 * 32 * 1 * 1500 * 1280 * 2  # CTranslate2: one cross-attention copy per sequence
    hf = estimate(get_model("whisper-large-v3"), Settings(precision="fp16", beam=5, runtime="transformers"))
    assert hf.get("kv_cache") == 5 * w.get("kv_cache")  # transformers repeats it per beam
    e = estimate(get_model("all-minilm-l6-v2"), Settings(precision="fp32", batch=16, seq=256))
    assert e.get("weights") == 22_713_216 * 4


def test_seed_rules_reproduced():
    assert seed_rule(10**9, "inference", "fp32").low_gb == pytest.approx(4.0)
    assert seed_rule(10**9, "inference", "bf16").low_gb == pytest.approx(2.0)
    assert seed_rule(10**9, "inference", "int8").low_gb == pytest.approx(1.0)
    full32 = seed_rule(7 * 10**9, "full", "fp32")
    assert full32.low_gb == pytest.approx(112.0) and "16X" in full32.rule and full32.high_gb == 140
    assert seed_rule(7 * 10**9, "full", "bf16").low_gb == pytest.approx(84.0)  # 12X
    lora7 = seed_rule(7 * 10**9, "lora", "bf16")
    assert (lora7.low_gb, lora7.high_gb) == (16.0, 24.0)
    lora70 = seed_rule(70 * 10**9, "lora", "bf16")
    assert (lora70.low_gb, lora70.high_gb) == (140.0, 200.0)
    big = seed_rule(70 * 10**9, "full", "fp32")
    assert big.high_gb is None and big.low_gb >= 1000  # "> 1 TB"
    assert not seed_rule(7 * 10**9, "qlora", "nf4").applies


def test_catalog_lookup_and_cards():
    assert get_model("meta-llama/Llama-3.1-8B-Instruct").name == "llama-3.1-8b"
    assert get_model("Qwen2.5-7B-Instruct").name == "qwen2.5-7b"
    with pytest.raises(ConfigError, match="llama-2-7b"):
        get_model("gpt-5")
    assert get_card("NVIDIA GeForce RTX 4090").name == "RTX 4090"
    assert get_card("NVIDIA A100-SXM4-80GB").name == "A100 80GB"
    assert get_card("t4").memory_gib == 16
    with pytest.raises(ConfigError, match="H100"):
        get_card("Voodoo 2")


def test_invalid_settings_are_user_errors():
    with pytest.raises(ConfigError, match="valid"):
        Settings(mode="pretrain")
    with pytest.raises(ConfigError, match="valid"):
        parse_precision("int3")
    with pytest.raises(ConfigError, match="qlora"):
        estimate(get_model("llama-2-7b"), Settings(mode="full", precision="nf4"))


def test_params_override_scales_weights():
    from pipeline.planner.readers import arch_for_params

    arch = arch_for_params(7 * 10**9)
    assert isinstance(arch, DecoderArch) and arch.params() == 7 * 10**9
    assert weight_bytes(arch, parse_precision("fp32"))[0] == 28 * 10**9
