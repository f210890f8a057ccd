"""Training estimates of a decoder LLM (full fine-tuning, LoRA, QLoRA): states plus activations, at
the peak, on one GPU (``sharding`` then divides what multi-GPU sharding splits).

The peak of a training step is at one of two moments (PyTorch frees each layer's activations as its
backward runs and adds that layer's gradients, so in between memory moves linearly between them):

- start of backward: weights + optimizer state + all activations + the loss and its gradients;
- end of backward / optimizer step: weights + optimizer state + all gradients + step temporaries.

The optimizer state already exists (steady state, step 2 on). The breakdown lists the components at
whichever moment is larger, so it adds up to the peak; the other moment is given in a note.
"""

from __future__ import annotations

from dataclasses import asdict

from syllabus_common.errors import ConfigError
from pipeline.planner import GiB
from pipeline.planner.catalog import DecoderArch
from pipeline.planner.types import Component, Estimate, Settings, _n
from pipeline.planner.frameworks import litgpt_loss, quantizes_head, retained_4bit_inputs
from pipeline.planner.inference import dequant_copy_bytes, weight_bytes
from pipeline.planner.precision import linear_bits, parse_precision
from pipeline.planner.sharding import Units, describe, persistent_bytes, shard
from pipeline.planner.terms import (_matrices, gradient_bytes, lora_params, loss_terms, mask_bytes, optimizer_bytes,
                                    optimizer_temp_bytes, resolve_targets, train_layer_activations)


def training_style(st: Settings) -> tuple[str, int, int]:
    """(activation style, parameter bytes, activation bytes) for a training setting."""
    prec = st.prec()
    if st.mode == "full":
        if prec.kind != "float":
            raise ConfigError(f"full fine-tuning needs fp32/bf16/fp16 weights, not {prec.label} (use --mode qlora)")
        if prec.name == "fp32":
            return "pure", 4, 4
        # Mixed precision (Micikevicius et al. 2018): fp32 master weights, 16-bit compute.
        return ("amp", 4, 2) if st.master_weights else ("pure", 2, 2)
    if st.mode == "lora":
        if prec.kind != "float" or prec.name == "fp32":
            raise ConfigError(f"--mode lora takes a bf16/fp16 base, not {prec.label} (4-bit base: --mode qlora)")
        return "lora", 2, 2
    if st.mode == "qlora":
        if prec.kind not in ("bnb",) or prec.name == "int8":
            raise ConfigError(f"--mode qlora takes a 4-bit base (nf4 or fp4), not {prec.label}")
        return "lora", 2, 2
    raise ValueError(st.mode)


def _states(arch: DecoderArch, st: Settings, style: str, param_b: int) -> tuple[list[Component], int, int, int]:
    """(weights/adapters/optimizer components, trainable params, gradient bytes, state bytes)."""
    prec = st.prec()
    static: list[Component] = []
    if style == "lora":
        base_prec = prec if st.mode == "qlora" else parse_precision(prec.name)
        wb, wf = weight_bytes(arch, base_prec)
        if quantizes_head(st.framework, st.mode) and arch.head_params():
            # LitGPT: the output layer is a 4-bit layer too (frameworks.quantizes_head)
            head = arch.head_params() * arch.scale
            wb -= int(head * (2 - linear_bits(base_prec, arch.hidden, arch.vocab) / 8))
            wf += "; output layer 4-bit too (LitGPT)"
        static.append(Component("weights", f"base weights ({base_prec.label}, frozen)", wb, "Parameter", wf,
                                "QLoRA §3 (Dettmers et al. 2023)" if st.mode == "qlora" else "params × 2 B"))
        if st.mode == "qlora" and (st.kbit_prep is None or st.kbit_prep):
            # peft.prepare_model_for_kbit_training: every 16-bit parameter that is not Params4bit
            # (embeddings, lm_head, norms, biases) is cast to fp32 ("cast all non INT8 parameters to fp32").
            other = int((arch.shape_params() - arch.layers * arch.block_linear_params()) * arch.scale)
            static.append(Component("upcast", "unquantized weights upcast to fp32", 2 * other, "Parameter",
                                    f"{_n(other)} embedding/head/norm params × (4 − 2) B",
                                    "peft prepare_model_for_kbit_training (cast non-quantized params to fp32)"))
        trainable = lora_params(arch, st.lora_rank, st.lora_targets)
        # peft keeps adapters in fp32 (autocast_adapter_dtype); LitGPT's bf16-true makes every
        # parameter, and so its gradient and AdamW state, bf16.
        ab = 2 if st.framework == "litgpt" else 4
        static.append(Component("adapters", f"LoRA adapters (r={st.lora_rank}, {'bf16' if ab == 2 else 'fp32'})",
                                trainable * ab, "Parameter",
                                f"{_n(trainable)} = L·Σ r·(in+out) over {len(resolve_targets(arch, st.lora_targets))} targets × {ab} B",
                                "Hu et al. 2021 §4.1; peft autocast_adapter_dtype / LitGPT bf16-true"))
        grad_b, state_b = ab, ab
    else:
        trainable = arch.params()
        label = "weights (fp32 master copy)" if style == "amp" else f"weights ({prec.name})"
        static.append(Component("weights", label, trainable * param_b, "Parameter", f"{_n(trainable)} params × {param_b} B",
                                "Micikevicius et al. 2018 (mixed precision keeps fp32 master weights)"
                                if style == "amp" else "params × dtype bytes"))
        grad_b = param_b
        state_b = 4 if param_b == 4 else param_b  # torch optimizers keep state in the parameter dtype
    lora = (st.lora_rank, st.lora_targets) if style == "lora" else None
    ob, of, osrc = optimizer_bytes(arch, trainable, st.optimizer, state_b, _matrices(arch, lora))
    static.append(Component("optimizer", f"optimizer state ({st.optimizer})", ob, "Optstate", of, osrc))
    return static, trainable, grad_b, state_b


def _activations(arch: DecoderArch, st: Settings, style: str, p: int) -> tuple[list[Component], int]:
    """(activation components kept at the start of backward, one recomputed layer's bytes)."""
    lora = (st.lora_rank, st.lora_targets) if style == "lora" else None
    tokens = st.batch * st.seq
    per_token, layer_formula = train_layer_activations(arch, style, p, st.attention, st.seq, lora,
                                                       quantized_base=st.mode == "qlora", framework=st.framework,
                                                       dropout=st.lora_dropout)
    res_b = {"amp": 4, "pure": p, "lora": 2}[style]  # residual stream dtype
    norm_final = {"amp": 8, "pure": 4 + p, "lora": 4}[style] * arch.hidden
    head_in = {"amp": 2, "pure": p, "lora": 0}[style] * arch.hidden
    if quantizes_head(st.framework, st.mode):
        head_in = 2 * arch.hidden  # the 4-bit output layer keeps its input (MatMul4Bit ctx.tensors)
    edge = tokens * (res_b * arch.hidden + norm_final + head_in)  # embedding output, final norm, lm_head input
    one_layer = tokens * per_token
    if st.grad_ckpt:
        # Full recomputation (Chen et al. 2016; Korthikanti et al. 2022 §4.2; torch.utils.checkpoint):
        # each layer boundary keeps only the layer's input hidden states (the cos/sin and mask
        # arguments are shared tensors); in backward one layer's activations exist again.
        layers_act = arch.layers * tokens * res_b * arch.hidden
        act_formula = f"{arch.layers} layer inputs × {tokens} tokens × {res_b}h B (+ one layer recomputed)"
    else:
        layers_act = arch.layers * one_layer
        act_formula = f"{arch.layers} layers × {tokens} tokens × ({layer_formula}) = {_n(per_token)} B/token/layer"
    comps = [Component("activations", "activations" + (" (checkpointed)" if st.grad_ckpt else ""),
                       layers_act + edge, "Activation", act_formula,
                       "Korthikanti et al. 2022 §4.1 method on the HF Llama layer" +
                       ("; Chen et al. 2016 (recomputation)" if st.grad_ckpt else ""))]
    mb = mask_bytes(st.batch, st.seq, p, st.attention) if st.framework == "hf" else 0  # LitGPT: is_causal, no mask
    if mb:
        comps.append(Component("mask", "4-D attention mask (padded batch)", mb, "Activation",
                               f"{st.batch} × {st.seq}² × {p} B", "transformers 4-D causal mask for SDPA/eager"))
    kept, _, lf, lsrc = _loss(arch, st, p)
    comps.append(Component("loss", f"logits + loss ({st.loss} vocabulary)", kept, "Activation", lf, lsrc))
    if style == "amp":
        n = arch.layers * arch.block_linear_params() + arch.vocab * arch.hidden
        comps.append(Component("weight_casts", "16-bit weight copies (autocast)", 2 * n, "Activation",
                               f"{_n(n)} matmul weights × 2 B", "torch.autocast keeps one cast per weight for backward"))
    return comps, (one_layer if st.grad_ckpt else 0)


def estimate_training(arch: DecoderArch, st: Settings) -> Estimate:
    style, param_b, p = training_style(st)
    tokens = st.batch * st.seq
    static, trainable, grad_b, state_b = _states(arch, st, style, param_b)
    gb, gf = gradient_bytes(trainable, grad_b)
    gradients = Component("gradients", f"gradients ({'fp32' if grad_b == 4 else '16-bit'})", gb, "Gradient", gf,
                          "ZeRO (Rajbhandari et al. 2020) §3.1")
    acts, recompute = _activations(arch, st, style, p)

    # -- start of backward: the loss backward, or (checkpointed) one layer recomputed -----------
    _, loss_temp, _, _ = _loss(arch, st, p)
    temp = max(loss_temp, recompute + 2 * tokens * arch.hidden * 4)
    what = f"max(loss grads {_n(loss_temp)} B{', one recomputed layer + its input grads' if st.grad_ckpt else ''})"
    db = _dequant_copy(arch, st)
    if db:
        temp += db
        what += " + one dequantized 16-bit weight (bitsandbytes backward)"
    # Gradient accumulation: .grad is zeroed only after the optimizer step, so from the second
    # micro-batch on every backward starts with all gradients allocated (torch zero_grad(set_to_none)).
    held = [gradients] if st.grad_accum > 1 else []
    start = [*static, *held, *acts, Component("backward_temp", "backward temporaries", temp, "Temp", what,
                                       "autograd: grad-out and grad-in of log_softmax live together; "
                                       "bitsandbytes MatMul4Bit.backward dequantize_4bit")]
    start = _with_previous_graph(arch, st, p, [*static, *held, *acts], start)

    # -- end of backward / optimizer step -------------------------------------------------------
    # A tied embedding's gradient arrives twice (output layer, then embedding): accumulating the second
    # holds the old .grad, the new one and their sum at once (autograd AccumulateGrad).
    tied_temp = 2 * arch.vocab * arch.hidden * grad_b if (st.mode == "full" and arch.tied) else 0
    largest = _largest_trainable(arch, st)
    step_temp, step_what = optimizer_temp_bytes(st.optimizer, trainable, state_b, largest, st.fused_optimizer)
    end = [*static, gradients]
    if max(tied_temp, step_temp):
        what = f"optimizer step: {step_what}" if step_temp >= tied_temp else "tied-embedding gradient accumulation"
        end.append(Component("step_temp", "backward-end / step temporaries", max(tied_temp, step_temp), "Temp",
                             what, "torch.optim._multi_tensor_adamw; transformers Adafactor; torch AccumulateGrad"))
    unit = max(arch.block_params(), arch.vocab * arch.hidden)
    unit_trainable = unit if st.mode == "full" else trainable // arch.layers
    norms = (2 * arch.layers + 1) * arch.hidden  # two RMSNorms per layer + the final one
    units = Units(unit, unit_trainable, grad_b, gb, arch.params(), p, head_params=arch.vocab * arch.hidden,
                  layer_params=arch.block_params(), small_bytes=persistent_bytes(static, st, arch.hidden, norms, p))
    start, start_cpu = shard(start, st, units)
    end, end_cpu = shard(end, st, units, step=True)
    return choose_peak(arch.name, arch.params(), st, (start, start_cpu), (end, end_cpu), gradients.label,
                       _notes(st, style))


def _dequant_copy(arch: DecoderArch, st: Settings) -> int:
    """The 16-bit copy a 4-bit layer's forward and backward make of its weight (0 unless QLoRA)."""
    if st.mode != "qlora":
        return 0
    db, _ = dequant_copy_bytes(arch)
    if quantizes_head(st.framework, st.mode):  # LitGPT's 4-bit output layer: V × h
        db = max(db, 2 * arch.vocab * arch.hidden)
    return db


def _loss(arch: DecoderArch, st: Settings, p: int) -> tuple[int, int, str, str]:
    """Logits and loss of the framework: LitGPT's chunked head and 16-bit loss, or ``terms.loss_terms``."""
    tokens = st.batch * st.seq
    if st.framework == "litgpt":
        return litgpt_loss(arch.vocab, tokens, st.batch, p)
    return loss_terms(arch.vocab, tokens, st.loss, p, st.keep_outputs)


def _with_previous_graph(arch: DecoderArch, st: Settings, p: int, forward_end: list[Component],
                         start: list[Component]) -> list[Component]:
    """The start of backward, or the end of the next forward while the previous micro-batch's graph
    still holds its 4-bit layers' inputs and logits (frameworks.retained_4bit_inputs), if larger."""
    kept, formula = retained_4bit_inputs(arch, st.batch * st.seq, st.framework, st.mode)
    if not kept:
        return start
    logits = p * st.batch * st.seq * arch.vocab
    previous = Component("previous_graph", "previous micro-batch: 4-bit inputs + logits", kept + logits, "Activation",
                         f"{formula} + {p} B × {st.batch * st.seq} × {arch.vocab} logits",
                         "bitsandbytes MatMul4Bit ctx.tensors (not freed by backward); litgpt finetune loop")
    # The output layer's forward dequantizes its weight too (MatMul4Bit.forward: dequantize_4bit).
    dequant = Component("forward_temp", "one dequantized 16-bit weight (forward)", _dequant_copy(arch, st), "Temp",
                        "the output layer's V × h × 2 B" if quantizes_head(st.framework, st.mode) else "largest linear × 2 B",
                        "bitsandbytes MatMul4Bit.forward dequantize_4bit")
    moment = [*forward_end, previous, dequant]
    return moment if sum(c.bytes for c in moment) > sum(c.bytes for c in start) else start


def _largest_trainable(arch: DecoderArch, st: Settings) -> int:
    if st.mode == "full":
        return max(max(i * o for i, o in arch.linear_shapes().values()), arch.vocab * arch.hidden)
    return max(st.lora_rank * max(arch.linear_shapes()[t]) for t in resolve_targets(arch, st.lora_targets))


def choose_peak(name: str, params: int, st: Settings, start: tuple[list, list], end: tuple[list, list],
                grad_label: str, notes: list[str], label: str | None = None) -> Estimate:
    """The Estimate at the larger of the two moments of a step; the other one in a note."""
    s_total, e_total = (sum(c.bytes for c in moment[0]) for moment in (start, end))
    if s_total >= e_total:
        (comps, cpu), phase = start, "start of backward"
        if any(c.key == "previous_graph" for c in comps):
            phase = "end of forward, the previous micro-batch's graph still alive"
        notes.insert(0, f"end of backward (all {grad_label}, optimizer step): {e_total / GiB:.2f} GiB")
    else:
        (comps, cpu), phase = end, "end of backward / optimizer step"
        notes.insert(0, f"start of backward (all activations): {s_total / GiB:.2f} GiB")
    line = describe(st)
    if line:
        notes.insert(0, line)
    if cpu:
        notes.insert(1, f"CPU RAM for the offloaded {', '.join(c.key for c in cpu)}: {sum(c.bytes for c in cpu) / GiB:.1f} GiB")
    est = Estimate(name, params, asdict(st), label or st.prec().label, comps, phase, notes)
    est.cpu_components = cpu
    return est


def _notes(st: Settings, style: str) -> list[str]:
    notes: list[str] = []
    if st.mode == "full" and style == "amp":
        notes.append("mixed precision: fp32 weights + fp32 grads + 8 B AdamW = 16 B/param (the seed's 12X leaves out the fp32 master copy)")
    if st.optimizer == "adamw" and not st.fused_optimizer:
        notes.append("AdamW counted with PyTorch's default foreach step (a temporary the size of the state); fused=True avoids it")
    if st.optimizer.startswith("paged"):
        notes.append("paged optimizer: its state is in CUDA unified memory and can page out to CPU RAM under pressure; counted in full here")
    if st.framework == "litgpt":
        notes.append("LitGPT: fused qkv kept whole by attention, one LoRA dropout for q/k/v, 16-bit chunked logits and loss"
                     + ("; every linear 4-bit, the output layer too" if st.mode == "qlora" else ""))
    elif st.loss == "full":
        notes.append("logits and loss over the whole vocabulary in fp32 (transformers); --loss chunked for torchtune-style chunked cross-entropy, --framework litgpt for LitGPT")
    if st.optimizer in ("adamw8bit", "paged_adamw8bit") or st.mode == "qlora":
        notes.append("bitsandbytes needs a CUDA GPU")
    return notes
