"""What the knowledge base reports back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestOutcome:
    path: str
    status: str  # "added" | "replaced" | "unchanged" | "duplicate" | "failed"
    message: str = ""
    doc_id: int | None = None
    pages: int = 0
    chunks: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float | None = None  # a recording's length (its transcript's last section end)
    work_seconds: float | None = None  # wall time of the file's work (extract or transcribe, chunk, embed)

    @property
    def failed(self) -> bool:
        return self.status == "failed"
