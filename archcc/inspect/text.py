"""Plain-text tables and human numbers shared by summary and diff reports.

    >>> human(124439808), human_bytes(3 * 2**20), shape_text([[1, 1024, 768]])
    ('124.44M', '3.0 MiB', '(1, 1024, 768)')
"""

from __future__ import annotations

from archcc.inspect.summary import Summary


def human(n: float) -> str:
    """Counts with SI suffixes: 0, 950, 12.3K, 124.44M, 6.67T."""
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}"
    return f"{n:g}"


def human_bytes(n: float) -> str:
    for scale, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n:g} B"


def signed(text: str, n: float) -> str:
    return ("+" if n > 0 else "") + text if n else "0"


def shape_text(shapes: list[list[int]]) -> str:
    """One shape as ``(1, 16, 768)``; several outputs joined with ``, ``."""
    return ", ".join("(" + ", ".join(map(str, s)) + ")" for s in shapes) or "-"


def table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Aligned columns; the indices in ``right`` are right-aligned (numbers)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(header), rule, *(line(r) for r in rows)]


def summary_text(s: Summary) -> str:
    """The table people read: one row per layer, then the totals."""
    dims = " ".join(f"{k}={v}" for k, v in {"B": s.batch, **s.dims}.items())
    sets = " ".join(s.sets)
    inputs = ", ".join(f"{n} {shape_text([shape])}" for n, shape in s.inputs.items())
    head = [f"{s.name} ({s.spec})  {dims}" + (f"  set {sets}" if sets else ""),
            f"inputs: {inputs}", ""]
    rows = [["  " * (r.depth - 1) + r.path, r.kind, shape_text(r.shape), human(r.params),
             human(r.flops), human(r.macs), human_bytes(r.act_bytes)] for r in s.rows]
    t = s.totals
    rule_and_total = [["total", "", "", human(t["params"]), human(t["flops"]), human(t["macs"]),
                       human_bytes(t["act_bytes"])]]
    lines = table(["layer", "kind", "output", "params", "FLOPs", "MACs", "act. memory"],
                  rows + rule_and_total, right={3, 4, 5, 6})
    lines.insert(len(lines) - 1, lines[1])
    notes = [f"tied: {k} = {v} (counted once)" for k, v in s.tied.items()]
    if s.kv_cache:
        kv = s.kv_cache
        note = (f"kv cache: {human_bytes(kv['bytes'])} per sequence at T={kv['T']} "
                f"(float32, {kv['layers']} layers)")
        if kv["unwindowed_bytes"] != kv["bytes"]:
            note += f"; {human_bytes(kv['unwindowed_bytes'])} without the sliding window"
        notes.append(note)
    exact = f"params {t['params']:,}  FLOPs {t['flops']:,}"
    return "\n".join(head + lines + [exact] + notes) + "\n"
