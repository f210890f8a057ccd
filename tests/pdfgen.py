"""Small PDFs made with PyMuPDF for the tests: real files, known contents."""

from __future__ import annotations

from pathlib import Path

import pymupdf

A5 = pymupdf.paper_rect("a5")

# One topic per page, each with a fact found nowhere else in the document.
TOPIC_PAGES = [
    ("Volcanoes", "Shield volcanoes such as Mauna Loa are built almost entirely of fluid basaltic lava flows. "
                  "Their gentle slopes form because the lava is hot and runny and travels far before cooling."),
    ("Honeybees", "A honeybee colony communicates the direction of flowers through the waggle dance. "
                  "The angle of the dance relative to vertical encodes the angle between the food and the sun."),
    ("Sourdough", "Sourdough bread rises thanks to wild yeast and lactic acid bacteria living in the starter. "
                  "Feeding the starter flour and water every day keeps the culture active and sour."),
    ("Glaciers", "Glaciers carve U-shaped valleys as they grind the bedrock beneath them. "
                 "Rocks frozen into the ice scratch long parallel striations into the valley floor."),
    ("Chess openings", "The Sicilian Defence begins with the moves e4 and c5 and is Black's most popular reply. "
                       "It fights for the centre asymmetrically instead of mirroring White's pawn."),
    ("Lighthouses", "The Fresnel lens lets a lighthouse beam be seen more than twenty nautical miles away. "
                    "Its concentric glass prisms bend the lamp's light into a narrow horizontal beam."),
]

QUESTIONS = [  # (question in other words, physical page holding the answer)
    ("How do bees tell each other where the flowers are?", 4),
    ("What makes a lighthouse visible from so far out at sea?", 8),
    ("Why is sourdough bread sour and how does it rise?", 5),
    ("What shape of valley does moving ice leave behind?", 6),
    ("Which lava builds volcanoes with gentle slopes?", 3),
    ("What is the most common answer for Black when White opens e4?", 7),
]


def topic_book(path: Path, extra: str = "", title: str = "A Book of Small Facts") -> Path:
    """Two front pages (labels i, ii), then one chapter per topic (labels 1..6), with an outline,
    a running head on every page and the page number at the foot."""
    doc = pymupdf.open()
    front = doc.new_page(width=A5.width, height=A5.height)
    front.insert_textbox(pymupdf.Rect(40, 200, A5.width - 40, 300), title, fontsize=16, align=1)
    contents = doc.new_page(width=A5.width, height=A5.height)
    contents.insert_textbox(pymupdf.Rect(40, 60, A5.width - 40, 400),
                            "Contents\n" + "\n".join(f"{i + 1} {t}" for i, (t, _) in enumerate(TOPIC_PAGES)), fontsize=10)
    toc = [[1, "Contents", 2]]
    for i, (topic, text) in enumerate(TOPIC_PAGES):
        page = doc.new_page(width=A5.width, height=A5.height)
        body = f"{i + 1} {topic}\n\n{text}" + (f"\n\n{extra}" if extra and i == 0 else "")
        page.insert_textbox(pymupdf.Rect(40, 60, A5.width - 40, A5.height - 60), body, fontsize=10)
        toc.append([1, f"{i + 1} {topic}", doc.page_count])
    doc.set_page_labels([
        {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
        {"startpage": 2, "prefix": "", "style": "D", "firstpagenum": 1},
    ])
    for page in doc:
        page.insert_text((40, 30), title + " — field notes", fontsize=7)
        page.insert_text((A5.width / 2, A5.height - 25), page.get_label(), fontsize=7)
    doc.set_toc(toc)
    doc.set_metadata({"title": title, "author": "Test Author"})
    doc.save(path)
    return path


def long_book(path: Path, pages: int, seed: int = 0) -> Path:
    """A plain multi-page PDF with distinct text per page (for batches and crash tests)."""
    words = ("memory tensor gradient optimizer weight cache token layer batch precision quantized "
             "adapter attention context kernel device").split()
    doc = pymupdf.open()
    for p in range(pages):
        page = doc.new_page(width=A5.width, height=A5.height)
        lines = []
        for line in range(24):
            k = (seed * 7919 + p * 131 + line * 17)
            lines.append(" ".join(words[(k + j * 5) % len(words)] for j in range(9)) + f" {seed}-{p}-{line}.")
        page.insert_textbox(pymupdf.Rect(30, 30, A5.width - 30, A5.height - 30), "\n".join(lines), fontsize=8)
    doc.set_toc([[1, f"Part {seed}", 1]])
    doc.save(path)
    return path


def encrypted_pdf(path: Path) -> Path:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "secret notes")
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    return path


def image_only_page_pdf(path: Path) -> Path:
    """Page 1 has text; page 2 is a picture with no text layer, like a scanned page."""
    doc = pymupdf.open()
    doc.new_page(width=A5.width, height=A5.height).insert_text((40, 60), "Page one has real text about comets.")
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
    pix.set_rect(pix.irect, (200, 200, 200))
    doc.new_page(width=A5.width, height=A5.height).insert_image(pymupdf.Rect(40, 40, 200, 200), pixmap=pix)
    doc.save(path)
    return path


def truncated_pdf(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path
