"""Small HTML pieces of the report page: escaping, numbers, embedded PNGs, tables, the style."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np

__all__ = ["CSS", "HEAD", "NAV", "SCRIPT", "esc", "img_tag", "number_text", "png_uri", "table"]

CSS = """
:root{--muted:#5b6475;--line:#dde1e8;--accent:#2f6fde}*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,sans-serif;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:1.1rem 2rem}header h1{margin:0;font-size:1.5rem}
header p{margin:.2rem 0 0;color:#c9cfdb}nav a{margin-right:1.1rem;color:var(--accent)}
nav{padding:.45rem 2rem;background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0}
main{max-width:1280px;margin:auto;padding:.5rem 2rem 2rem}figure{margin:0}
h2{border-bottom:2px solid var(--line);padding-bottom:.2rem;margin-top:1.6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.7rem}
.card,.sample{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.5rem .9rem}
.card .v{font-size:1.35rem;font-weight:600}.k,figcaption,.cap{color:var(--muted);font-size:.85rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff;margin:.4rem 0 1rem}
th,td{border:1px solid var(--line);padding:.2rem .6rem;text-align:right}th{background:#eef1f5}
td:first-child,th:first-child,table.kv td{text-align:left}tr.best td{background:#eaf7ea}
.plot{width:100%;height:auto;background:#fff;border:1px solid var(--line)}
.sample{margin-bottom:1rem}.sample h3{margin:.2rem 0 .4rem;font-size:1rem}
.panels{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:.6rem}
.panel{width:100%;height:auto;image-rendering:pixelated;border:1px solid var(--line)}
.colorbar{width:240px;height:14px;vertical-align:middle;border:1px solid var(--line)}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:.5rem .8rem;border-radius:6px}
pre{background:#fff;border:1px solid var(--line);padding:.8rem;overflow:auto}
footer{color:var(--muted);font-size:.8rem;text-align:center;padding:1rem}
"""

HEAD = '<meta name="viewport" content="width=device-width, initial-scale=1">'
NAV = (
    '<nav><a href="#summary">Summary</a><a href="#curves">Learning curves</a>'
    '<a href="#metrics">Metrics</a><a href="#gallery">Gallery</a>'
    '<a href="#config">Configuration</a></nav>'
)
#: records in ``<body data-images-loaded="k/n">`` how many of the ``n`` pictures the browser
#: decoded (the browser test reads it)
SCRIPT = """
window.addEventListener("load", function () {
  var all = Array.prototype.slice.call(document.images);
  var ok = all.filter(function (im) { return im.complete && im.naturalWidth > 0; });
  document.body.dataset.imagesLoaded = ok.length + "/" + all.length;
});
"""


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attribute values.

    >>> esc('a<b "c"')
    'a&lt;b &quot;c&quot;'
    """
    return html.escape(str(value), quote=True)


def number_text(value: Any) -> str:
    """A table cell's text: floats to 4 significant places, NaN/None as a dash.

    >>> number_text(0.123456), number_text(None), number_text(12)
    ('0.1235', '–', '12')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def png_uri(rgb: np.ndarray) -> str:
    """A ``data:`` URI of a ``(Y, X)`` or ``(Y, X, 3)`` uint8 picture as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def img_tag(uri: str, alt: str, cls: str, ident: str = "") -> str:
    """An ``<img>`` of CSS class ``cls`` showing ``uri``, with alt text and an optional id."""
    idattr = f' id="{esc(ident)}"' if ident else ""
    return f'<img{idattr} class="{cls}" alt="{esc(alt)}" src="{uri}">'


def table(
    header: list[str], rows: list[list[Any]], classes: list[str] | None = None, kind: str = ""
) -> str:
    """An HTML table of CSS class ``kind``; ``classes`` gives each row a class (``"best"``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(
            f"<tr{cls}>" + "".join(f"<td>{esc(number_text(v))}</td>" for v in row) + "</tr>"
        )
    rows_html = "".join(body)
    return f'<div class="scroll"><table class="{kind}"><tr>{head}</tr>{rows_html}</table></div>'
