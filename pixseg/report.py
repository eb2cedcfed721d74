"""report.html: one self-contained page (tables, plots, panels inlined) that opens offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from pixseg.io import write_text

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f2f5; } td.best { font-weight: bold; }
.meta { color: #555; font-size: 0.92em; } img { max-width: 100%; border: 1px solid #ddd; }
li.holds::marker { content: "\\2713  "; color: #1a7f37; } li.fails::marker { content: "\\2717  "; color: #c62828; }
"""


def table_html(table: dict, best=max) -> str:
    """An HTML table; in each column the value `best` picks (max, or min for costs) is bold."""
    columns = table["columns"]
    best = [best(row[c] for row in table["rows"]) for c in range(1, len(columns))]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in table["rows"]:
        cells = [f"<td>{html.escape(row[0])}</td>"]
        for c, value in enumerate(row[1:]):
            mark = ' class="best"' if value == best[c] else ""
            cells.append(f"<td{mark}>{value:.2f}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image_html(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    kind = "gif" if Path(path).suffix.lower() == ".gif" else "png"
    return f'<img alt="{html.escape(alt)}" src="data:image/{kind};base64,{data}">'


def paper_claims(tables: dict) -> list[tuple[str, bool]]:
    """The orderings Liu & Lew report, checked column by column against the measured tables."""
    iou = {row[0]: row[1:] for row in tables["iou"]["rows"]}
    recall = tables["recall"]["rows"]
    columns = tables["iou"]["columns"][1:]

    def every(better, worse, strict=False):
        pairs = list(zip(iou[better], iou[worse]))
        return all(b > w if strict else b >= w for b, w in pairs)

    claims = [
        ("FusedLoss >= SoftmaxLoss (no CRF)", every("FusedLoss", "SoftmaxLoss")),
        ("SoftmaxLoss + CRFs > SoftmaxLoss", every("SoftmaxLoss + CRFs", "SoftmaxLoss", strict=True)),
        ("FusedLoss + CRFs > FusedLoss", every("FusedLoss + CRFs", "FusedLoss", strict=True)),
        ("FusedLoss + POS-CRFs >= FusedLoss + CRFs", every("FusedLoss + POS-CRFs", "FusedLoss + CRFs")),
        ("foreground recall: ours > baseline", all(o > b for b, o in zip(recall[0][1:], recall[1][1:]))),
    ]
    if "FusedLoss + centre-prior CRFs" in iou:
        claims.append(("POS beats a centred Gaussian prior (FusedLoss + POS-CRFs >= centre-prior CRFs)",
                       every("FusedLoss + POS-CRFs", "FusedLoss + centre-prior CRFs")))
    return [(f"{text} [{', '.join(columns)}]", holds) for text, holds in claims]


def render_report(path: str | Path, *, tables: dict, figures: dict[str, Path], crf: dict, data: str,
                  budget: str, models: list[str], training: list[str] = (), sweep: dict | None = None) -> Path:
    """The page; `training` holds sentences on how the models were trained, `sweep` the loss weights
    sweep as a table (columns, rows) scored on held-out training images."""
    path = Path(path)
    claims = "".join(f'<li class="{"holds" if holds else "fails"}">{html.escape(text)} '
                     f'&mdash; {"holds" if holds else "does not hold"}</li>' for text, holds in paper_claims(tables))
    sections = [
        "<h1>pixseg: Liu &amp; Lew's study</h1>",
        f'<p class="meta">Data: {html.escape(data)} &middot; budget: {html.escape(budget)} &middot; '
        f'models: {html.escape(", ".join(models))} &middot; CRF (tuned on held-out training images): '
        f'appearance {html.escape(str(tuple(crf["appearance"])))}, smoothness '
        f'{html.escape(str(tuple(crf["smoothness"])))}, {crf["iterations"]} iterations</p>',
        "<h2>Mean IoU (%) on val</h2>", table_html(tables["iou"]),
        "<h2>Foreground recall (%) on val</h2>",
        "<p class='meta'>Object pixels labelled with their correct class / all object pixels.</p>",
        table_html(tables["recall"]),
        "<h2>What the paper claims, checked</h2>", f"<ul>{claims}</ul>",
    ]
    if training:
        sections += ["<h2>Training</h2>", "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in training) + "</ul>"]
    if sweep is not None:
        sections += ["<h2>FusedLoss weights on held-out training images (%)</h2>", table_html(sweep)]
    for title, figure in figures.items():
        sections += [f"<h2>{html.escape(title[:1].upper() + title[1:])}</h2>", image_html(figure, title)]
    return write_page(path, "pixseg report", sections)


def write_page(path: str | Path, title: str, sections: list[str]) -> Path:
    """Write one self-contained HTML page from its sections (HTML strings), atomically."""
    path = Path(path)
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(sections) + "\n</body></html>\n")
    write_text(path, page)
    return path
