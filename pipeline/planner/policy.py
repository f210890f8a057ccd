"""Which precisions the `vram` command compares: the default per mode, every precision a mode can
take (``--precision all``), and Whisper's CTranslate2 compute types."""

from __future__ import annotations

DEFAULT_PRECISION = {"inference": "bf16", "full": "bf16", "lora": "bf16", "qlora": "nf4"}
ALL_PRECISIONS = {
    "inference": ("fp32", "bf16", "int8", "nf4", "gptq-int4", "awq-int4", "Q8_0", "Q4_K_M"),
    "full": ("fp32", "bf16"),
    "lora": ("bf16", "fp16"),
    "qlora": ("nf4", "fp4"),
}
WHISPER_PRECISIONS = ("fp32", "fp16", "int8_float16", "int8")
MODES = ("inference", "full", "lora", "qlora")


def labelled_settings(arch, mode: str, precision: str | None) -> list[tuple[str, str, str]]:
    """[(label, mode, precision)] to estimate: one precision, every precision of a mode
    (``precision="all"``) or every mode (``mode="all"``, labelled by mode)."""
    from syllabus_common.errors import ConfigError
    from pipeline.planner.catalog import DecoderArch

    decoder = isinstance(arch, DecoderArch)
    if mode == "all":
        if not decoder:
            raise ConfigError("--mode all compares LLM modes; Whisper and embedders run inference only")
        return [(m, m, DEFAULT_PRECISION[m]) for m in MODES]
    if precision == "all":
        precs = ALL_PRECISIONS[mode] if decoder else WHISPER_PRECISIONS
        if decoder and arch.file_precision and arch.file_precision not in precs:
            precs = (*precs, arch.file_precision)
        return [(p, mode, p) for p in precs]
    default = DEFAULT_PRECISION[mode] if decoder else "fp16"
    if decoder and arch.file_precision and precision is None and mode == "inference":
        default = arch.file_precision  # a GGUF file: its own type
    p = precision or default
    return [(p, mode, p)]
