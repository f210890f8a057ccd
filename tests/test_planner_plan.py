"""The planner: expected choices on known cards, never a choice that does not fit, every choice explained."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.planner import GiB
from pipeline.planner.hardware import Device, detect, what_if_card, what_if_size
from pipeline.planner.plan import LLM_CANDIDATES, make_plan, resolve_auto


@pytest.fixture(autouse=True)
def _empty_hf_cache(tmp_path, monkeypatch):
    """Only the bundled weights count as local: point the hub cache at an empty folder."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


def _check_fits(plan):
    budget = plan.budget_bytes
    embed = plan.stages["embedding"].choice
    embed_b = embed.estimate.total_bytes if embed else 0
    for name, sp in plan.stages.items():
        if sp.choice is None:
            continue
        room = budget - embed_b if name == "llm" else budget
        assert sp.choice.estimate.total_bytes <= room, f"{name}: {sp.choice.label()} does not fit"
        if sp.runner_up is not None and sp.choice is not None:
            assert sp.runner_up.estimate.total_bytes > room, "the runner-up should be what did not fit"
    if plan.sharing == "shared":
        assert sum(sp.choice.estimate.total_bytes for sp in plan.stages.values() if sp.choice) <= budget


def _check_explained(plan):
    for sp in plan.stages.values():
        assert sp.explanation
        if sp.choice:
            assert sp.choice.model in sp.explanation and "GiB" in sp.explanation
        if sp.runner_up:
            assert sp.runner_up.model in sp.explanation
    assert plan.lines and all(plan.lines)


def test_cpu_offline_chooses_the_bundled_models_and_names_what_to_fetch():
    cpu = Device("cpu", "CPU RAM", 24 * GiB, 20 * GiB, "psutil")
    plan = make_plan(cpu)
    assert plan.stages["llm"].choice.model == "smollm2-135m"
    assert plan.stages["speech"].choice.model == "whisper-base"  # bundled, better than tiny.en
    assert plan.stages["embedding"].choice.model == "all-minilm-l6-v2"
    assert plan.stages["llm"].fetch is not None  # a bigger model would fit if downloaded
    assert "fetch" in plan.stages["llm"].explanation
    _check_fits(plan)
    _check_explained(plan)


def test_speech_on_a_multicore_cpu_counts_the_encoder_instance(monkeypatch):
    """On CPU the speech backend loads the weights twice (encoder threads / decoder thread); on a
    one-core machine, and on a GPU, once."""
    import ingest.asr.faster as faster

    cpu = Device("cpu", "CPU RAM", 24 * GiB, 20 * GiB, "psutil")
    for cores, copies in ((2, 2), (1, 1)):
        monkeypatch.setattr(faster, "usable_cores", lambda: cores)
        est = make_plan(cpu).stages["speech"].choice.estimate
        weights = {c.key: c.bytes for c in est.components}
        assert sum(b for k, b in weights.items() if k.startswith("weights")) == copies * weights["weights"]
    gpu = make_plan(what_if_card("T4")).stages["speech"].choice.estimate
    assert "weights_encoder" not in {c.key for c in gpu.components}


@pytest.mark.parametrize("card,context,expected_llm", [
    ("H200", 4096, ("qwen2.5-72b", "int8")),  # bf16 needs ~136 GiB: over the 126 GiB budget
    ("A100 80GB", 4096, ("qwen2.5-72b", "nf4")),  # int8 ~70 GiB + cache is over 72 - embedder
    ("RTX 3060", 4096, ("phi-3-medium", "nf4")),  # qwen2.5-14b nf4 ~11 GiB (1.6 GB of 16-bit embeddings) > 10.2
    ("T4", 4096, ("qwen2.5-14b", "nf4")),
])
def test_expected_llm_on_known_cards_with_download(card, context, expected_llm):
    plan = make_plan(what_if_card(card), context=context, allow_download=True)
    choice = plan.stages["llm"].choice
    assert (choice.model, choice.precision) == expected_llm
    _check_fits(plan)
    _check_explained(plan)


def test_t4_has_no_bf16_so_16_bit_means_fp16():
    plan = make_plan(what_if_card("T4"), allow_download=True)
    options = [o for o in [plan.stages["llm"].runner_up, plan.stages["llm"].choice] if o]
    assert options and all(o.precision != "bf16" for o in options)
    from pipeline.planner.plan import _precisions

    assert _precisions("llm", what_if_card("T4"))[0] == "fp16"


def test_stages_share_a_big_card_and_take_turns_on_a_small_one():
    assert make_plan(what_if_card("RTX 4090")).sharing == "shared"  # bundled models are tiny
    small = make_plan(what_if_size("8GiB"), allow_download=True)
    assert small.sharing == "sequential"  # the best LLM leaves no room for large-v3 beside it
    _check_fits(small)


def test_context_and_batch_that_fit_are_reported():
    plan = make_plan(what_if_card("RTX 4090"), context=8192)
    assert plan.max_context >= 8192 and plan.max_batch >= 1
    assert any("context up to" in line for line in plan.lines)


def test_models_with_too_few_positions_are_skipped():
    plan = make_plan(what_if_card("H100"), context=16384, allow_download=True)
    assert plan.stages["llm"].choice.model not in ("phi-3-mini", "phi-3-medium", "llama-2-70b")
    assert any("skipped" in line for line in plan.lines)


def test_nothing_fits_is_said_plainly():
    plan = make_plan(what_if_size("300MB"), allow_download=True)
    assert plan.stages["llm"].choice is None
    assert "nothing fits" in plan.stages["llm"].explanation


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gib=st.floats(min_value=0.5, max_value=200), context=st.sampled_from([2048, 4096, 8192, 32768]),
       margin=st.floats(min_value=0.0, max_value=0.5), download=st.booleans())
def test_never_chooses_what_does_not_fit(gib, context, margin, download):
    dev = Device("cuda", "what-if", int(gib * GiB), int(gib * GiB), "--vram", what_if=True)
    plan = make_plan(dev, context=context, margin=margin, allow_download=download)
    _check_fits(plan)
    _check_explained(plan)
    llm = plan.stages["llm"].choice
    if llm is not None and download:
        # "the largest that fits": every better-ranked option is over the budget.
        better = [n for n in LLM_CANDIDATES[: LLM_CANDIDATES.index(llm.model)]]
        assert plan.stages["llm"].runner_up is None or plan.stages["llm"].runner_up.model in better + [llm.model]


def test_resolve_auto_for_each_stage():
    cpu = Device("cpu", "CPU RAM", 16 * GiB, 12 * GiB, "psutil")
    assert resolve_auto("llm", device=cpu)["model"] == "smollm2-135m"
    assert resolve_auto("speech", device=cpu)["model"] == "whisper-base"
    assert resolve_auto("embedding", device=cpu)["config_value"] == "all-MiniLM-L6-v2"
    from syllabus_common.errors import ConfigError

    with pytest.raises(ConfigError, match="valid"):
        resolve_auto("vision", device=cpu)


def test_detect_without_gpu_falls_back_to_cpu_ram():
    devices = detect()
    assert devices and devices[0].total_bytes > 0
    assert detect(gpu="RTX 4090")[0].what_if and detect(vram="24GB")[0].total_bytes == 24 * 10**9
