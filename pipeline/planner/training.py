"""Training estimates (full fine-tuning, LoRA, QLoRA): states plus activations, at the peak.

The peak of a training step is at one of two moments (PyTorch frees each layer's activations as its
backward runs and adds that layer's gradients, so in between memory moves linearly between them):

- start of backward: weights + optimizer state + all activations + the loss gradients;
- end of backward / optimizer step: weights + optimizer state + all gradients (+ step temporaries).

The optimizer state already exists (steady state, step 2 on). The breakdown lists the components at
whichever moment is larger, so it adds up to the peak; the other moment is given in a note.
"""

from __future__ import annotations

from dataclasses import asdict

from syllabus_common.errors import ConfigError
from pipeline.planner import GiB
from pipeline.planner.catalog import DecoderArch
from pipeline.planner.estimator import (Component, Estimate, Settings, _matrices, _n, gradient_bytes,
                                        lora_params, loss_bytes, optimizer_bytes, resolve_targets,
                                        train_layer_activations,
                                        weight_bytes)
from pipeline.planner.precision import parse_precision


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


def estimate_training(arch: DecoderArch, st: Settings) -> Estimate:
    style, param_b, p = training_style(st)
    prec = st.prec()
    lora = (st.lora_rank, st.lora_targets) if style == "lora" else None
    tokens = st.batch * st.seq
    notes: list[str] = []
    static: list[Component] = []

    # -- states ------------------------------------------------------------------------------
    if style == "lora":
        base_prec = prec if st.mode == "qlora" else parse_precision(prec.name)
        wb, wf = weight_bytes(arch, base_prec)
        static.append(Component("weights", f"base weights ({base_prec.label}, frozen)", wb, "Parameter", wf,
                                "QLoRA §3 (Dettmers et al. 2023)" if st.mode == "qlora" else "params × 2 B"))
        trainable = lora_params(arch, st.lora_rank, st.lora_targets)
        static.append(Component("adapters", f"LoRA adapters (r={st.lora_rank}, fp32)", trainable * 4, "Parameter",
                                f"{_n(trainable)} = L·Σ r·(in+out) over {len(resolve_targets(arch, st.lora_targets))} targets × 4 B",
                                "Hu et al. 2021 §4.1; peft keeps adapters in fp32 (autocast_adapter_dtype)"))
        grad_b, state_b = 4, 4
    else:
        trainable = arch.params()
        wb = trainable * param_b
        label = "weights (fp32 master copy)" if style == "amp" else f"weights ({prec.name})"
        static.append(Component("weights", label, wb, "Parameter", f"{_n(trainable)} params × {param_b} B",
                                "Micikevicius et al. 2018 (mixed precision keeps fp32 master weights)"
                                if style == "amp" else "params × dtype bytes"))
        grad_b = param_b
        state_b = 4 if param_b == 4 else param_b  # torch optimizers keep state in the parameter dtype
    ob, of, osrc = optimizer_bytes(arch, trainable, st.optimizer, state_b, _matrices(arch, lora))
    static.append(Component("optimizer", f"optimizer state ({st.optimizer})", ob, "Optstate", of, osrc))
    gb, gf = gradient_bytes(trainable, grad_b)
    gradients = Component("gradients", f"gradients ({'fp32' if grad_b == 4 else '16-bit'})", gb, "Gradient", gf,
                          "ZeRO (Rajbhandari et al. 2020) §3.1")

    # -- activations -------------------------------------------------------------------------
    per_token, layer_formula = train_layer_activations(arch, style, p, st.attention, st.seq, lora,
                                                       quantized_base=st.mode == "qlora")
    res_b = {"amp": 4, "pure": p, "lora": 2}[style]  # residual stream dtype
    norm_final = {"amp": 8, "pure": 4 + p, "lora": 4}[style] * arch.hidden
    head_in = {"amp": 2, "pure": p, "lora": 0}[style] * arch.hidden
    edge = tokens * (res_b * arch.hidden + norm_final + head_in)  # embedding output, final norm, lm_head input
    loss_act, loss_temp = loss_bytes(arch, tokens)
    one_layer = tokens * per_token
    if st.grad_ckpt:
        # Full recomputation (Chen et al. 2016; Korthikanti et al. 2022 §4.2): only each layer's input is
        # kept; during backward one layer's activations exist again.
        layers_act = arch.layers * tokens * res_b * arch.hidden
        recompute = one_layer
        act_formula = f"{arch.layers} layer inputs × {tokens} tokens × {res_b}h B (+ one layer recomputed)"
    else:
        layers_act = arch.layers * one_layer
        recompute = 0
        act_formula = f"{arch.layers} layers × {tokens} tokens × ({layer_formula}) = {_n(per_token)} B/token/layer"
    activations = Component("activations", "activations" + (" (checkpointed)" if st.grad_ckpt else ""),
                            layers_act + edge, "Activation", act_formula,
                            "Korthikanti et al. 2022 §4.1 method on the HF Llama layer" +
                            ("; Chen et al. 2016 (recomputation)" if st.grad_ckpt else ""))
    loss = Component("loss", "loss (fp32 log-softmax)", loss_act, "Activation",
                     f"4 B × {tokens} tokens × {arch.vocab} vocab", "transformers ForCausalLMLoss")
    casts = None
    if style == "amp":
        n = arch.layers * arch.block_linear_params() + arch.vocab * arch.hidden
        casts = Component("weight_casts", "16-bit weight copies (autocast)", 2 * n, "Activation",
                          f"{_n(n)} matmul weights × 2 B", "torch.autocast keeps one cast per weight for backward")

    # -- the two candidate peaks ---------------------------------------------------------------
    start_temp = max(loss_temp, recompute + 2 * tokens * arch.hidden * 4)
    start = [*static, activations, loss] + ([casts] if casts else []) + [
        Component("backward_temp", "backward temporaries", start_temp, "Temp",
                  f"max(loss grads 8 B × {tokens}×{arch.vocab}{', one recomputed layer + its input grads' if st.grad_ckpt else ''})",
                  "autograd: grad-out and grad-in of log_softmax live together")]
    # A tied embedding's gradient arrives twice (output layer, then embedding): accumulating the second
    # holds the old .grad, the new one and their sum at once (autograd AccumulateGrad).
    tied_temp = 2 * arch.vocab * arch.hidden * grad_b if (st.mode == "full" and arch.tied) else 0
    step_temp = _step_temp(arch, st, trainable, state_b)
    end = [*static, gradients]
    if max(tied_temp, step_temp):
        what = "Adafactor step (fp32 update, 2 × largest matrix)" if step_temp >= tied_temp else "tied-embedding gradient accumulation"
        end.append(Component("step_temp", "backward-end / step temporaries", max(tied_temp, step_temp), "Temp",
                             what, "transformers Adafactor; torch AccumulateGrad"))
    s_total, e_total = sum(c.bytes for c in start), sum(c.bytes for c in end)
    if s_total >= e_total:
        comps, phase = start, "start of backward"
        notes.append(f"end of backward (all {gradients.label}): {e_total / GiB:.2f} GiB")
    else:
        comps, phase = end, "end of backward / optimizer step"
        notes.append(f"start of backward (all activations): {s_total / GiB:.2f} GiB")
    if st.mode == "full" and style == "amp":
        notes.append("mixed precision: fp32 weights + fp32 grads + 8 B AdamW = 16 B/param (the seed's 12X leaves out the fp32 master copy)")
    if st.optimizer in ("adamw8bit",) or st.mode == "qlora":
        notes.append("bitsandbytes needs a CUDA GPU")
    return Estimate(arch.name, arch.params(), asdict(st), prec.label, comps, phase, notes)


def _step_temp(arch: DecoderArch, st: Settings, trainable: int, state_b: int) -> int:
    """Adafactor's step builds fp32 temporaries the size of the gradient (grad² + eps and the update):
    2 × the largest matrix (transformers.optimization.Adafactor.step). Fused AdamW and SGD update in
    place."""
    if st.optimizer != "adafactor":
        return 0
    if st.mode == "full":
        largest = max(max(i * o for i, o in arch.linear_shapes().values()), arch.vocab * arch.hidden)
    else:
        from pipeline.planner.estimator import resolve_targets

        largest = max(st.lora_rank * max(arch.linear_shapes()[t]) for t in resolve_targets(arch, st.lora_targets))
    return 2 * largest * 4
