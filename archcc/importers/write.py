"""Family spec + overlay -> one standalone spec file that is known to build.

An import never writes ``extends:``: references must stay inside a project and relative to
the spec, and an imported spec is often written elsewhere. Instead the committed family spec
(``specs/gpt2.yaml``) is composed with an overlay (``name``, ``doc``, ``params``, the odd
field) under the usual merge rules (mappings merge, ``None`` deletes) and written out whole,
checkpoint layouts included::

    write_spec("gpt2", {"name": "my_gpt2", "params": {"n_layer": 2}}, Path("my_gpt2.yaml"),
               SourceLoc("config.json"), note="Sizes from config.json (archcc import hf).")

The result is compiled before anything is written, so a config that cannot build (heads not
dividing the width, ...) is an error pointing at its source, and no half-made file appears.
"""

from __future__ import annotations

import keyword
import tempfile
from collections.abc import Callable
from pathlib import Path

from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc
from archcc.parser.compose import compose, expand_block_bases, merge
from archcc.parser.schema import Spec
from archcc.parser.yaml_loader import SourceMap

# the family specs ship inside the package (archcc/specs links to the checkout's specs/),
# so an installed wheel imports as a checkout does
SPECS = Path(__file__).resolve().parents[1] / "specs"
SUFFIXES = (".yaml", ".yml", ".arch")


def family_spec(family: str) -> Path:
    """The committed spec of a family (``specs/<family>.yaml``, shipped as archcc/specs)."""
    path = SPECS / f"{family}.yaml"
    if not path.is_file():
        raise ArchccError(Diagnostic(SourceLoc(str(path)), "",
                                     f"the family spec {family}.yaml is missing",
                                     "reinstall archcc: its package carries specs/"))
    return path


def spec_name(out: Path, name: str | None, origin: SourceLoc) -> str:
    """Check the output file name; the spec's name is ``--name``, else the file's stem (it
    becomes a Python module name). Done before any work, so a bad ``-o`` fails fast."""
    if out.suffix not in SUFFIXES:
        raise ArchccError(Diagnostic(origin, "", f"'{out}' is not a spec file name",
                                     "write to a .yaml, .yml or .arch file"))
    chosen = name if name is not None else out.stem
    if not chosen.isidentifier() or keyword.iskeyword(chosen):
        raise ArchccError(Diagnostic(origin, "", f"'{chosen}' is not a valid spec name "
                                                 "(it becomes generated/<name>.py)",
                                     "pass --name my_model, or name the output my_model.yaml"))
    return chosen


def _schema_line(out: Path) -> bool:
    """The editor schema comment is a relative path: keep it only where it resolves."""
    return (out.resolve().parent / "../schema/archcc.schema.json").is_file()


def _check_builds(text: str, suffix: str, locate: Callable[[str], SourceLoc]) -> None:
    """Compile the spec about to be written; an error is shown where ``locate`` puts its
    spec path (for a config: the key the failing param came from)."""
    from archcc.api import compile_spec

    with tempfile.TemporaryDirectory(prefix="archcc-import-") as folder:
        probe = Path(folder) / f"imported{suffix}"
        probe.write_text(text, encoding="utf-8")
        try:
            compile_spec(probe)
        except ArchccError as exc:
            first = exc.diagnostics[0]
            where = f"{first.path}: " if first.path else ""
            raise ArchccError(Diagnostic(locate(first.path), "", f"the imported spec does "
                                         f"not build: {where}{first.message}",
                                         first.hint)) from None


def render(family: str, overlay: dict, note: str = "") -> Spec:
    """The family spec composed with ``overlay``, validated; ``note`` extends its doc."""
    from archcc.parser import read_document, validate

    data, where, _ = compose(family_spec(family), read_document)
    data.pop("budget", None)  # the family's published size; an import is another size
    if note:
        data["doc"] = f"{data.get('doc') or ''} {note}".strip()
    unknown = set(overlay.get("params", {})) - set(data.get("params", {}))
    if unknown:  # an importer bug, not a user error: the tables name the spec's params
        raise KeyError(f"{family}.yaml has no params {sorted(unknown)}")
    # an overlay's init scheme (another library's: timm's ViT) replaces the family's whole
    schemes = {k: overlay[k] for k in ("init", "no_decay") if k in overlay}
    overlay = {k: v for k, v in overlay.items() if k not in schemes}
    data, where = merge(data, where, overlay, SourceMap(where.file))
    data.update(schemes)
    expand_block_bases(data, where)
    return validate(data, where)


def write_spec(family: str, overlay: dict, out: Path, origin: SourceLoc,
               note: str = "", locate: Callable[[str], SourceLoc] | None = None) -> Path:
    """Compose, check that it builds, then write ``out`` atomically; returns ``out``.

    ``locate`` maps the spec path of a build error to where its value came from (default:
    ``origin``)."""
    from archcc.output import write_atomic
    from archcc.parser.writer import render_spec

    spec = render(family, overlay, note)
    text = render_spec(spec, out.suffix, _schema_line(out))
    _check_builds(text, out.suffix, locate or (lambda path: origin))
    write_atomic(out, text)
    return out


def write_data(data: dict, out: Path, origin: SourceLoc,
               locate: Callable[[str], SourceLoc] | None = None) -> Path:
    """A spec assembled whole (a decoder from its parts): validate, check that it builds,
    then write ``out`` atomically. Blocks that ``extends`` another stay written as the
    change they are; ``locate`` as in :func:`write_spec`."""
    import copy

    from archcc.output import write_atomic
    from archcc.parser import validate
    from archcc.parser.writer import render_spec

    derived = {name: copy.deepcopy(block) for name, block in data.get("blocks", {}).items()
               if "extends" in block}
    data, where = copy.deepcopy(data), SourceMap(origin.file)
    expand_block_bases(data, where)
    spec = validate(data, where)
    text = render_spec(spec, out.suffix, _schema_line(out), derived)
    _check_builds(text, out.suffix, locate or (lambda path: origin))
    write_atomic(out, text)
    return out
