"""LLM contract, registry, precision choice, the fast CPU decoder and the bundled model end to end."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from test_llm_support import ROOT, TEST_MAX_NEW, FakeLLM, converted_folder, fake_backend, llm_config, shared_llm

from syllabus_common.errors import ConfigError
from pipeline.llm import GenerationOptions, available_backends, load_llm


def test_builtin_backends_are_registered_and_unknown_names_list_choices():
    assert {"transformers", "openai"} <= set(available_backends())
    with pytest.raises(ConfigError) as err:
        load_llm(SimpleNamespace(backend="nope"))
    assert "nope" in str(err.value) and "transformers" in str(err.value) and "openai" in str(err.value)


def test_config_rejects_unknown_backend_and_precision_naming_the_key():
    with pytest.raises(ConfigError, match="llm.backend.*valid: .*openai"):
        llm_config(backend="llama-cpp")
    with pytest.raises(ConfigError, match="llm.precision"):
        llm_config(precision="int3")


def test_fake_backend_is_picked_by_config_through_the_real_registry():
    fake = FakeLLM()
    with fake_backend(fake):
        cfg = llm_config(backend="fake")
        llm = load_llm(cfg.llm)
        assert llm is fake
        out = llm.generate([{"role": "user", "content": "one two three"}], GenerationOptions(max_new_tokens=3))
    assert out.text == "summary of one" and out.stats.finish_reason == "length"
    assert "fake" not in available_backends()


def test_help_imports_no_model_or_server_library():
    code = (
        "import sys\nfrom pipeline.cli import app\n"
        "try:\n    app(['--help'], prog_name='syllabus')\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'transformers', 'openai', 'fastapi', 'uvicorn') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "ask" in result.stdout and "summarize" in result.stdout and "serve" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-300:]


def test_precision_auto_and_loud_fallbacks():
    from pipeline.llm.hf import resolve_precision
    from pipeline.llm.quant import kernel_available

    notes: list[str] = []
    if kernel_available("int4"):
        assert resolve_precision("auto", "cpu", gguf_4bit=True, notify=notes.append) == "int4"
    assert resolve_precision("auto", "cpu", gguf_4bit=False, notify=notes.append) in ("bf16", "fp32")
    assert resolve_precision("fp16", "cpu", gguf_4bit=False, notify=notes.append) in ("bf16", "fp32")
    assert notes and "fp16" in notes[-1]  # said out loud, not silently changed
    assert resolve_precision("fp32", "cpu", gguf_4bit=True, notify=notes.append) == "fp32"


def test_gguf_header_reader_finds_the_bundled_file_type():
    from pipeline.llm.convert import gguf_file_type
    from syllabus_common.models import bundled_path

    assert gguf_file_type(bundled_path("SmolLM2-135M-Instruct")) == 3  # LLAMA_FTYPE_MOSTLY_Q4_1


def test_fast_decoder_matches_transformers_logits():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.llm.fastlm import FastDecoder, unsupported

    folder = converted_folder()
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert unsupported(model.config) is None
    ids = tok("The mean of a vector is computed with mean(x); the variance with var(x). " * 6).input_ids[:80]
    with torch.inference_mode():
        ref = model(torch.tensor([ids])).logits[0]
    exact = FastDecoder(model, "fp32", 128)
    # transformers' own fp32 forward gives this prompt one of two sets of logits, up to 2.5e-3 apart,
    # from one process to the next (measured: 2 runs in 6); the fast decoder's are the same each time.
    tol = 1e-2
    assert torch.allclose(exact.prefill(ids[:60]), ref[59], atol=tol)
    for j in range(60, 79):  # single-token steps over the static cache
        assert torch.allclose(exact.step(ids[j]), ref[j], atol=tol)
    # A prompt longer than one prefill chunk is causal across the chunk boundary.
    assert torch.allclose(exact.prefill(ids[:70], chunk=16), ref[69], atol=tol)
    # Every position's logits after a cached prefix (scoring a given text, not generating one).
    exact.prefill(ids[:50])
    assert torch.allclose(exact.forward(ids[50:70], every=True), ref[50:70], atol=tol)
    quant = FastDecoder(model, "int4", 128)
    quant.prefill(ids[:50])
    rows = quant.forward(ids[50:70], every=True)  # the int8 head over many rows at once
    assert rows.shape == ref[50:70].shape
    assert (rows.argmax(-1) == ref[50:70].argmax(-1)).float().mean() >= 0.8
    quant.prefill(ids[:40])
    agree = sum(int(torch.argmax(quant.step(ids[j])) == torch.argmax(ref[j])) for j in range(40, 79)) / 39
    assert agree >= 0.8  # int4 layers + int8 head: measured ~95% next-token agreement on R-intro text
    assert quant.decode_weight_bytes < exact.decode_weight_bytes / 4


def test_bundled_model_streams_an_answer_with_stats():
    llm = shared_llm()
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?"}]
    stream = llm.stream(messages, GenerationOptions(max_new_tokens=TEST_MAX_NEW))
    deltas = list(stream)
    text = "".join(deltas)
    assert text.strip() and len(deltas) >= 2
    assert stream.stats.prompt_tokens == llm.count_chat_tokens(messages)
    assert 1 <= stream.stats.completion_tokens <= TEST_MAX_NEW
    assert stream.stats.first_token_s is not None and stream.stats.first_token_s <= stream.stats.seconds
    info = llm.describe()
    assert info["backend"] == "transformers" and info["context_length"] == 2048 and info["fast_path"]
    # Greedy decoding is deterministic: the same question gives the same answer.
    assert llm.generate(messages, GenerationOptions(max_new_tokens=TEST_MAX_NEW)).text == text


def test_stop_strings_end_the_text_and_length_is_reported():
    llm = shared_llm()
    messages = [{"role": "user", "content": "Describe a cat in two sentences."}]
    full = llm.generate(messages, GenerationOptions(max_new_tokens=TEST_MAX_NEW))
    words = full.text.split()
    assert len(words) >= 4, full.text
    stop = words[3]
    cut = llm.generate(messages, GenerationOptions(max_new_tokens=TEST_MAX_NEW, stop=(stop,)))
    assert cut.text == full.text[: full.text.find(stop)]
    short = llm.generate(messages, GenerationOptions(max_new_tokens=3))
    assert short.stats.completion_tokens == 3 and short.stats.finish_reason == "length"


def test_chat_template_and_token_counts_use_the_models_tokenizer():
    llm = shared_llm()
    prompt = llm.chat_template([{"role": "user", "content": "Hello"}])
    assert prompt.startswith("<|im_start|>") and prompt.rstrip().endswith("<|im_start|>assistant")
    assert llm.count_tokens("Hello world") == 2
    assert llm.count_chat_tokens([{"role": "user", "content": "Hello"}]) > llm.count_tokens("Hello")


def test_sampling_with_a_seed_is_reproducible():
    llm = shared_llm()
    messages = [{"role": "user", "content": "Tell me a word."}]
    opts = GenerationOptions(max_new_tokens=8, temperature=0.9, top_p=0.9, seed=7)
    assert llm.generate(messages, opts).text == llm.generate(messages, opts).text


def test_reply_logprob_is_the_same_on_both_paths_and_prefers_the_fitting_reply():
    """log P(reply | messages): the fast decoder and transformers' forward agree; a reply that fits
    the passage is more likely than one that does not."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.llm.fastlm import FastDecoder
    from pipeline.llm.hf import TransformersLLM

    folder = converted_folder()
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    generic = TransformersLLM(tok, model, None, "generic", "cpu", "fp32", 512)
    fast = TransformersLLM(tok, None, FastDecoder(model, "fp32", 512), "fast", "cpu", "fp32", 512)
    messages = [{"role": "user", "content": "Passage: Paris is the capital and largest city of France.\n\n"
                                            "Write a question that this passage answers."}]
    fitting, other = "What is the capital of France?", "How do I install a printer driver?"
    a, b = generic.reply_logprob(messages, fitting), fast.reply_logprob(messages, fitting)
    assert a < 0 and abs(a - b) < 1e-2 * abs(a)
    assert fast.reply_logprob(messages, fitting) > fast.reply_logprob(messages, other) + 5
    assert shared_llm().reply_logprob(messages, fitting) > shared_llm().reply_logprob(messages, other) + 5
    one = tok.encode(" Paris", add_special_tokens=False)
    assert len(one) == 1 and fast.reply_logprob(messages, tok.decode(one)) < 0  # a one-token reply


def test_a_remote_backend_cannot_score_a_given_text():
    from pipeline.llm.remote import OpenAILLM

    with pytest.raises(ConfigError, match="cannot score a given text"):
        OpenAILLM.reply_logprob(SimpleNamespace(backend="openai"), [], "x")


def test_generic_generate_path_agrees_with_the_fast_path():
    """Architectures the fast path does not cover (and CUDA) stream through model.generate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.llm.fastlm import FastDecoder
    from pipeline.llm.hf import TransformersLLM

    folder = converted_folder()
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    generic = TransformersLLM(tok, model, None, "generic", "cpu", "fp32", 512)
    fast = TransformersLLM(tok, None, FastDecoder(model, "fp32", 512), "fast", "cpu", "fp32", 512)
    messages = [{"role": "user", "content": "What is the capital of Italy?"}]
    options = GenerationOptions(max_new_tokens=10)
    stream = generic.stream(messages, options)
    deltas = list(stream)
    assert "".join(deltas) == fast.generate(messages, options).text
    assert len(deltas) >= 2 and stream.stats.completion_tokens >= 2
    cut = generic.generate(messages, GenerationOptions(max_new_tokens=10, stop=(deltas[1].strip() or deltas[0],)))
    assert len(cut.text) < len("".join(deltas))  # a stop string ends model.generate early too
