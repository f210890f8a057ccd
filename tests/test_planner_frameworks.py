"""What the training framework and the runtimes keep: LitGPT's fused qkv, shared LoRA dropout, 4-bit
output layer, 16-bit chunked loss and the previous micro-batch's graph; peft's dropout masks;
CTranslate2's int8 embeddings, cache growth and cub caching; DeepSpeed ZeRO-3's buffers at the bounds
its configuration sets and the offloaded shard's copy. Each test checks one term against its formula."""

from __future__ import annotations

import pytest

from syllabus_common.errors import ConfigError
from pipeline.planner.catalog import get_model
from pipeline.planner.estimator import Settings, estimate
from pipeline.planner.frameworks import adapter_kept, attention_kept, retained_4bit_inputs
from pipeline.planner.readers import arch_from_config

LLAMA2 = get_model("llama-2-7b")  # multi-head attention
LLAMA3 = get_model("llama-3.1-8b")  # grouped-query attention
WHISPER = get_model("whisper-large-v2")
QV = ("q_proj", "v_proj")


def _get(est, key):
    return sum(c.bytes for c in est.components if c.key == key)


def test_litgpt_attention_keeps_the_whole_fused_qkv_through_the_value_view():
    h = LLAMA2.hidden  # q = kv = h
    hf, _ = attention_kept(LLAMA2, 2, "hf")
    lit, formula = attention_kept(LLAMA2, 2, "litgpt")
    assert lit - hf == 2 * 2 * h  # + the q and k parts of the fused output that v's view holds
    assert "fused qkv" in formula


def test_litgpt_expands_grouped_keys_and_values_to_every_head():
    lit, _ = attention_kept(LLAMA3, 2, "litgpt")
    assert lit == 2 * 4 * LLAMA3.q_dim + 4 * LLAMA3.heads  # q, k, v, out all q-sized (+ fp32 log-sum-exp)


def test_peft_dropout_keeps_a_one_byte_mask_per_target_and_litgpt_one_for_qkv():
    no_drop, _ = adapter_kept(LLAMA2, QV, 8, 2, "hf", 0.0)
    drop, _ = adapter_kept(LLAMA2, QV, 8, 2, "hf", 0.05)
    assert drop - no_drop == 2 * LLAMA2.hidden  # one bool per input element, per adapted module
    lit, _ = adapter_kept(LLAMA2, QV, 8, 2, "litgpt", 0.05)
    assert lit == 3 * LLAMA2.hidden + 2 * 8 * 2  # one shared input copy + mask, A's output per projection
    full = estimate(LLAMA2, Settings(mode="lora", seq=1024, lora_targets=QV, overhead=False))
    none = estimate(LLAMA2, Settings(mode="lora", seq=1024, lora_targets=QV, overhead=False, lora_dropout=0.0))
    assert _get(full, "activations") - _get(none, "activations") == LLAMA2.layers * 1024 * 2 * LLAMA2.hidden


def test_litgpt_qlora_quantizes_the_output_layer_and_dequantizes_it_in_backward():
    base = dict(mode="qlora", precision="nf4", seq=512, lora_targets=QV, overhead=False, double_quant=False)
    hf = estimate(LLAMA3, Settings(**base))
    lit = estimate(LLAMA3, Settings(framework="litgpt", **base))
    head = LLAMA3.vocab * LLAMA3.hidden
    assert _get(hf, "weights") - _get(lit, "weights") == pytest.approx(head * (2 - 4.5 / 8), rel=1e-6)
    assert any(c.key == "forward_temp" and c.bytes == 2 * head for c in lit.components)


def test_litgpt_qlora_peak_holds_the_previous_micro_batch_graph_and_hf_does_not():
    base = dict(mode="qlora", precision="nf4", seq=1024, lora_targets=QV, overhead=False)
    lit = estimate(LLAMA2, Settings(framework="litgpt", **base))
    kept, _ = retained_4bit_inputs(LLAMA2, 1024, "litgpt", "qlora")
    assert kept == 1024 * (LLAMA2.layers * 2 * (2 * LLAMA2.hidden + LLAMA2.intermediate) + 2 * LLAMA2.hidden)
    assert _get(lit, "previous_graph") == kept + 2 * 1024 * LLAMA2.vocab
    assert "previous micro-batch" in lit.phase
    hf = estimate(LLAMA2, Settings(**base))
    assert _get(hf, "previous_graph") == 0 and retained_4bit_inputs(LLAMA2, 1024, "hf", "qlora")[0] == 0
    assert retained_4bit_inputs(LLAMA2, 1024, "litgpt", "lora")[0] == 0  # 16-bit base: saved tensors are freed


def test_litgpt_loss_is_16_bit_logits_and_log_softmax():
    est = estimate(LLAMA2, Settings(mode="lora", seq=512, framework="litgpt", overhead=False))
    assert _get(est, "loss") == 2 * 2 * 512 * LLAMA2.vocab
    assert _get(est, "adapters") * 2 == _get(estimate(LLAMA2, Settings(mode="lora", seq=512, overhead=False)), "adapters")


def test_unknown_framework_and_bad_dropout_are_refused():
    with pytest.raises(ConfigError, match="framework"):
        Settings(mode="lora", framework="axolotl")
    with pytest.raises(ConfigError, match="dropout"):
        Settings(mode="lora", lora_dropout=1.0)


def test_ctranslate2_int8_quantizes_the_token_embedding():
    from pipeline.planner.whisper import whisper_linear_params

    int8 = estimate(WHISPER, Settings(precision="int8_float16", beam=5, overhead=False))
    d, n_lin = WHISPER.d_model, whisper_linear_params(WHISPER)
    emb = WHISPER.vocab * d
    others = WHISPER.params() - n_lin - emb  # convolutions, positions, norms, biases: fp16
    scales = 4 * (WHISPER.encoder_layers * (5 * d + WHISPER.ffn) + WHISPER.decoder_layers * (9 * d + WHISPER.ffn))
    expected = n_lin + emb + 4 * WHISPER.vocab + 2 * others + scales  # int8 + one fp32 scale per row
    assert _get(int8, "weights") == pytest.approx(expected, abs=2)


def test_ctranslate2_cache_grows_by_copying_one_layer():
    est = estimate(WHISPER, Settings(precision="fp16", beam=5, overhead=False))
    assert _get(est, "kv_growth") == _get(est, "self_kv") // (2 * WHISPER.decoder_layers)
    assert _get(est, "logits") == 5 * WHISPER.vocab * 2  # the decoder's output type, not fp32


def test_cub_caches_only_blocks_up_to_16_mib():
    one = estimate(WHISPER, Settings(precision="fp16", beam=5))
    eight = estimate(WHISPER, Settings(precision="fp16", beam=5, batch=8))
    assert _get(one, "allocator") == 200 * 2**20  # 5 beams × 448 × 1280 × 2 B per layer: cached, up to the cap
    # batch 8: one layer's cache is 40 × 1824 × 1280 × 2 B > 16 MiB, freed at once; only the logits stay cached
    assert _get(eight, "allocator") == _get(eight, "logits")


MT0 = arch_from_config({"model_type": "mt5", "d_model": 4096, "d_kv": 64, "num_heads": 64, "d_ff": 10240,
                        "num_layers": 24, "vocab_size": 250112, "feed_forward_proj": "gated-gelu",
                        "tie_word_embeddings": False}, "mt0-xxl")
MT0_PEFT = dict(mode="lora", precision="fp32", batch=8, seq=96, target_seq=3, lora_rank=8, lora_targets=("q", "v"),
                gpus=1, shard="zero3", overhead=False)  # eval/vram_published.yaml peft-mt0-xxl-lora-ds-zero3-offload


def test_zero3_gathers_up_to_the_live_and_reuse_bounds_and_copies_offloaded_shards_in():
    gpu_only = estimate(MT0, Settings(**MT0_PEFT))
    offload = estimate(MT0, Settings(offload="params", **MT0_PEFT))
    head = 250112 * 4096  # the largest module (the output layer)
    # max(stage3_max_live_parameters, stage3_max_reuse_distance) + the module fetched + the one the reuse scan
    # keeps, fp32; beside it one layer's unsharded LoRA gradient (under 1e6 elements)
    assert 0 < _get(gpu_only, "gathered") - (10**9 + 2 * head) * 4 < 10**6 * 4
    assert _get(offload, "gathered") - _get(gpu_only, "gathered") == head * 4  # N = 1: the whole shard
    assert all("configured bound" in c.label for c in gpu_only.components if c.key in ("gathered", "reduce_bucket"))
    assert any("upper bound" in n for n in gpu_only.notes)


def test_zero3_reduce_bucket_is_allocated_whole_and_copied_for_the_reduce_scatter():
    est = estimate(MT0, Settings(offload="params", **MT0_PEFT))
    trainable = 2 * 8 * (4096 + 4096) * (24 + 24 + 24)  # q and v of encoder self-, decoder self- and cross-attention
    assert _get(est, "reduce_bucket") == (5 * 10**8 + trainable) * 4


def test_zero3_small_tensors_stay_whole_on_every_gpu_and_only_the_optimizer_step_stages_a_sub_group():
    from pipeline.planner.sharding import Units, shard

    small = estimate(MT0, Settings(offload="params", **MT0_PEFT))  # r × 4096 < 1e5: LoRA matrices persist
    wide = estimate(MT0, Settings(offload="params", **{**MT0_PEFT, "lora_rank": 32}))  # 32 × 4096 ≥ 1e5
    norms = (3 * 48 + 2) * 4096 * 4
    adapters = sum(c.bytes for c in small.cpu_components if c.key == "adapters")  # offloaded, and yet kept whole
    assert _get(wide, "persistent") == norms and _get(small, "persistent") == norms + adapters > norms
    u = Units(10**6, 10**6, 2, 8 * 10**9, 8 * 10**9, head_params=10**8, layer_params=2 * 10**8)
    during, _ = shard([], Settings(mode="full", gpus=4, shard="zero3"), u)
    step, _ = shard([], Settings(mode="full", gpus=4, shard="zero3"), u, step=True)
    offloaded, _ = shard([], Settings(mode="full", gpus=4, shard="zero3", offload="optimizer"), u, step=True)
    assert [c.bytes for c in step if c.key == "sub_group"] == [10**9 * 4]  # min(sub_group_size, 4e9 / 4) fp32
    assert not [c for c in during + offloaded if c.key == "sub_group"]  # offloaded: pinned host memory


def test_zero3_offload_on_mt0_xxl_is_not_under_the_peft_measurement():
    # huggingface/peft README: 22 GB GPU (torch max_memory_allocated) for mt0-xxl LoRA, ZeRO-3 + CPU offload
    est = estimate(MT0, Settings(offload="params", **MT0_PEFT))
    assert est.tensor_bytes >= 22000 * 2**20


def test_fsdp_parameter_offload_adds_the_shard_copies():
    base = dict(mode="qlora", precision="nf4", seq=2048, grad_ckpt=True, gpus=4, shard="fsdp", overhead=False)
    plain = estimate(LLAMA3, Settings(**base))
    off = estimate(LLAMA3, Settings(offload="params", **base))
    unit = max(LLAMA3.block_params(), LLAMA3.vocab * LLAMA3.hidden)
    assert _get(off, "gathered") - _get(plain, "gathered") == (2 * unit // 4) * 2
