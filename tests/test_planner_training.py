"""Training terms, multi-GPU sharding, offload, Whisper runtimes, T5 / encoder training and the
fine-tuning plan: properties that follow from each formula's source."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from syllabus_common.errors import ConfigError
from pipeline.planner import GiB
from pipeline.planner.catalog import get_model
from pipeline.planner.estimator import Settings, estimate

LLAMA8 = get_model("llama-3.1-8b")


def _get(est, key):
    return sum(c.bytes for c in est.components if c.key == key)


def test_zero_stages_split_what_the_paper_says():
    base = dict(mode="full", seq=512, overhead=False, optimizer="adamw8bit")
    one = estimate(LLAMA8, Settings(**base))
    z1 = estimate(LLAMA8, Settings(gpus=4, shard="zero1", **base))
    z3 = estimate(LLAMA8, Settings(gpus=4, shard="zero3", **base))
    assert _get(z1, "optimizer") == _get(one, "optimizer") // 4  # ZeRO-1: optimizer state (and fp32 master)
    casts = 2 * (LLAMA8.layers * LLAMA8.block_linear_params() + LLAMA8.vocab * LLAMA8.hidden)
    long_z1 = estimate(LLAMA8, Settings(gpus=4, shard="zero1", **{**base, "seq": 8192}))
    assert _get(long_z1, "weight_casts") == casts  # ZeRO-1/2: the 16-bit working copy stays whole
    # at 512 tokens the ZeRO-3 peak is the optimizer step (its sub_group_size fp32 tile); at 8k, backward's start
    long_z3 = estimate(LLAMA8, Settings(gpus=4, shard="zero3", **{**base, "seq": 8192}))
    assert _get(long_z3, "weight_casts") == casts // 4
    assert _get(z3, "gathered") > 0 and z3.total_bytes < z1.total_bytes < one.total_bytes
    long_one = estimate(LLAMA8, Settings(**{**base, "seq": 8192}))
    assert _get(long_z1, "activations") == _get(long_one, "activations")  # each GPU runs its own micro-batch
    ddp = estimate(LLAMA8, Settings(gpus=4, shard="ddp", **base))
    assert _get(ddp, "ddp_buckets") == LLAMA8.params() * 4  # one more fp32 gradient copy


def test_offload_moves_states_to_cpu_ram():
    st = dict(mode="full", seq=512, gpus=8, shard="zero3", overhead=False)
    gpu = estimate(LLAMA8, Settings(**st))
    off = estimate(LLAMA8, Settings(offload="optimizer", **st))
    assert "optimizer" not in {c.key for c in off.components}
    assert sum(c.bytes for c in off.cpu_components) >= _get(gpu, "optimizer")
    assert off.total_bytes < gpu.total_bytes and off.as_dict()["cpu_bytes"] > 0
    with pytest.raises(ConfigError, match="zero3"):
        Settings(mode="full", offload="params", gpus=2, shard="zero2")
    with pytest.raises(ConfigError, match="training"):
        Settings(mode="inference", gpus=2, shard="zero3")


def test_full_vocabulary_loss_dominates_long_context_qlora():
    # transformers: fp32 logits + log-softmax kept, fp32 grad-out and grad-in in backward: 16 B per
    # token and vocabulary entry at the loss backward.
    st = Settings(mode="qlora", precision="nf4", seq=16384, grad_ckpt=True, attention="flash", overhead=False)
    est = estimate(LLAMA8, st)
    v, t = LLAMA8.vocab, 16384
    assert _get(est, "loss") == 8 * t * v and _get(est, "backward_temp") >= 8 * t * v
    chunked = estimate(LLAMA8, Settings(**{**st.__dict__, "loss": "chunked"}))
    trainer = estimate(LLAMA8, Settings(**{**st.__dict__, "keep_outputs": False}))
    assert chunked.total_bytes < trainer.total_bytes < est.total_bytes


def test_kbit_prep_upcasts_the_unquantized_weights():
    on = estimate(LLAMA8, Settings(mode="qlora", precision="nf4", seq=256, overhead=False))
    off = estimate(LLAMA8, Settings(mode="qlora", precision="nf4", seq=256, overhead=False, kbit_prep=False))
    # embeddings + lm_head (2 × 128256 × 4096) + norms go from 2 to 4 bytes
    assert _get(on, "upcast") == pytest.approx(2 * (2 * 128256 * 4096), rel=0.01) and not _get(off, "upcast")


def test_gradient_accumulation_and_foreach_adamw():
    base = dict(mode="full", seq=1024, batch=2, overhead=False, master_weights=False)
    arch = get_model("qwen2.5-0.5b")
    plain = estimate(arch, Settings(**base))
    accum = estimate(arch, Settings(grad_accum=4, **base))
    assert accum.phase == "start of backward" and _get(accum, "gradients") == arch.params() * 2
    assert accum.total_bytes > plain.total_bytes
    untied = get_model("qwen2.5-7b")  # (a tied embedding has its own backward-end temporary)
    short = dict(base, seq=16, batch=1)  # the step is the peak: foreach AdamW's sqrt temporaries
    foreach = estimate(untied, Settings(**short))
    fused = estimate(untied, Settings(fused_optimizer=True, **short))
    assert foreach.total_bytes - fused.total_bytes == untied.params() * 2


def test_cuda_context_is_a_documented_configurable_line():
    est = estimate(get_model("llama-3.2-1b"), Settings(seq=512))
    assert _get(est, "cuda_context") == 1024 * 2**20
    fw = estimate(get_model("whisper-base"), Settings(precision="fp16"))
    assert _get(fw, "cuda_context") == 512 * 2**20  # CTranslate2: no PyTorch kernels
    given = estimate(get_model("llama-3.2-1b"), Settings(seq=512, cuda_context_mib=1400))
    assert _get(given, "cuda_context") == 1400 * 2**20


def test_whisper_runtimes_batch_cache_and_fine_tuning():
    w = get_model("whisper-large-v2")
    ct2_1 = estimate(w, Settings(precision="fp16", beam=5))
    ct2_8 = estimate(w, Settings(precision="fp16", beam=5, batch=8))
    # batched windows: the cache is not 8 × 448 positions per beam
    assert _get(ct2_8, "self_kv") < 8 * _get(ct2_1, "self_kv") / 1.5
    openai = estimate(w, Settings(precision="fp16", beam=5, runtime="openai"))
    assert _get(openai, "kv_cache") == 5 * _get(ct2_1, "kv_cache") and _get(openai, "cuda_context") == GiB
    with pytest.raises(ConfigError, match="ctranslate2"):
        estimate(w, Settings(precision="int8_float16", runtime="transformers"))
    full = estimate(get_model("whisper-small"), Settings(mode="full", precision="bf16", batch=8))
    lora = estimate(get_model("whisper-small"), Settings(mode="lora", precision="bf16", batch=8))
    assert full.total_bytes > lora.total_bytes > 0 and _get(lora, "adapters") > 0
    with pytest.raises(ConfigError, match="lora"):
        estimate(w, Settings(mode="qlora", precision="nf4"))


def test_t5_and_encoder_configs():
    from pipeline.planner.readers import arch_from_config

    assert get_model("t5-small").params() == 60_506_624  # transformers' count for google-t5/t5-small
    assert get_model("mt5-small").params() == 300_176_768
    cfg = {"model_type": "mt5", "d_model": 512, "d_kv": 64, "num_heads": 6, "d_ff": 1024, "num_layers": 8,
           "vocab_size": 250112, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
    assert arch_from_config(cfg).params() == get_model("mt5-small").params()
    inf = estimate(get_model("mt5-base"), Settings(precision="bf16", seq=512))
    lora = estimate(get_model("mt5-base"), Settings(mode="lora", precision="bf16", seq=512, target_seq=128))
    assert 0 < inf.total_bytes < lora.total_bytes
    bert = estimate(get_model("bert-base"), Settings(mode="full", precision="bf16", batch=32, seq=256))
    assert bert.phase and _get(bert, "gradients") + _get(bert, "activations") > 0


def test_finetune_plan_fits_its_budget_and_explains_the_rest():
    from pipeline.planner.finetune import parse_gpus, plan_finetune

    plan = plan_finetune(LLAMA8, 24 * GiB)
    assert plan.choice is not None and plan.ranked[0] is plan.choice
    assert all(s.estimate.total_bytes <= plan.budget_bytes for s in plan.ranked)
    assert all(s.estimate.total_bytes > plan.budget_bytes and s.why_not for s in plan.runners_up)
    assert [s.throughput for s in plan.ranked] == sorted((s.throughput for s in plan.ranked), reverse=True)
    assert not any(s.method == "full" for s in plan.ranked)  # 8B full fine-tuning needs > 100 GB
    assert plan.seed["full"]["applies"] and plan.lines
    big = plan_finetune(get_model("llama-3.1-70b"), 80 * GiB, gpus=4)
    assert big.choice is not None and big.choice.shard != "none"
    assert parse_gpus("4x80GB") == (4, 80 * 10**9) and parse_gpus("2") == (2, None)
    with pytest.raises(ConfigError):
        parse_gpus("many")


def test_published_table_has_no_unsafe_fit():
    """eval/vram_published.yaml, boundary rows included: nowhere does the estimator say "fits" (10%
    margin) where the published run ran out of memory."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "eval"))
    import vram_eval

    rows = vram_eval.load_rows(vram_eval.HERE / "vram_published.yaml")
    results = vram_eval.evaluate([r for r in rows if r["metric"] != "max_seq"], 0.10)
    bounds = vram_eval.boundary([r for r in rows if r["metric"] == "max_seq"], 0.10)
    assert len(bounds) >= 5 and not [b["id"] for b in bounds if b["unsafe"]]
    assert vram_eval.summarize(results)["fit_unsafe"] == 0


def test_cli_plan_finetune_json_and_vram_sharding(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    r = CliRunner().invoke(app, ["plan", "--finetune", "qwen2.5-7b", "--gpus", "2x24GB", "--json",
                                 "--plot", str(tmp_path / "ft.png")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["gpus"] == 2 and data["choice"]["fits"] and (tmp_path / "ft.png").stat().st_size > 0
    r = CliRunner().invoke(app, ["vram", "--model", "llama-3.1-8b", "--mode", "full", "--gpus", "4", "--shard",
                                 "zero3", "--offload", "optimizer", "--optim", "adamw8bit", "--json"])
    assert r.exit_code == 0, r.output
    est = json.loads(r.stdout)["estimates"][0]
    assert est["cpu_bytes"] > 0 and est["settings"]["shard"] == "zero3"
