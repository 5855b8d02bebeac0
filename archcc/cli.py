"""The command line: argument parsing and printing only; the work lives in archcc.api.

    archcc build specs/*.yaml [-o generated] [-O 0|1|2] [--explain] [--dump-ir]
    archcc check specs/gpt2.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from archcc import __version__
from archcc.codegen.targets import TARGETS
from archcc.diagnostics import ArchccError, Diagnostic, SourceLoc, render
from archcc.output import write_all, write_atomic

if TYPE_CHECKING:
    from archcc.api import Compiled
    from archcc.parser import LoadedSpec

# Commands import what they use when they run: `archcc --version`, `check` and `fmt` answer
# without loading torch (benchmarks/bench_startup.py measures it).
BENCH_BACKENDS = ("eager", "inductor", "tensorrt", "reference")  # archcc.runtime.bench.BACKENDS


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set key=value`` (repeatable): every command that reads a spec takes it."""
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param (n_layer=24) or any field by dotted path "
                             "(blocks.Block.layers.attn.heads=16); repeatable")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archcc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"archcc {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="compile specs into generated PyTorch modules")
    build.add_argument("specs", nargs="+", type=Path)
    build.add_argument("-o", "--out", type=Path, default=Path("generated"),
                       help="output folder (default: generated)")
    build.add_argument("-O", "--opt-level", type=int, choices=(0, 1, 2), default=2,
                       help="0 = no IR passes; 1 = passes that keep parameter names "
                            "(attention fusion, cleanups); 2 = also fuse q/k/v projections "
                            "into one linear (default)")
    build.add_argument("--explain", action="store_true",
                       help="say which passes fired where, and near misses")
    build.add_argument("--dump-ir", nargs="?", const="final", metavar="after:PASS",
                       help="print the IR (final, or after:PASS) instead of writing files")
    build.add_argument("--target", choices=TARGETS, default="torch",
                       help="tensorrt: also emit a compile() helper for Torch-TensorRT")

    add_set_option(build)

    check = commands.add_parser("check", help="validate specs without writing anything")
    check.add_argument("specs", nargs="+", type=Path)
    add_set_option(check)

    resolve = commands.add_parser("resolve", help="print the composed spec (extends, imports, "
                                                  "--set) with where every value came from")
    resolve.add_argument("spec", type=Path)
    add_set_option(resolve)

    fmt = commands.add_parser("fmt", help="print a spec in its canonical layout")
    fmt.add_argument("specs", nargs="+", type=Path)
    fmt.add_argument("-w", "--write", action="store_true", help="rewrite the files in place")

    convert = commands.add_parser("convert", help="YAML <-> .arch, chosen by the suffixes")
    convert.add_argument("spec", type=Path)
    convert.add_argument("-o", "--out", type=Path, required=True, help="x.arch or x.yaml")

    blocks = commands.add_parser("blocks", help="document the ops a spec can use")
    blocks_cmd = blocks.add_subparsers(dest="blocks_command", required=True)
    blocks_cmd.add_parser("list", help="every op with a one-line summary")
    describe = blocks_cmd.add_parser("describe", help="fields, defaults and an example")
    describe.add_argument("op")

    export = commands.add_parser("export", help="torch.export / ONNX with the spec's dynamic "
                                 "dims")
    export.add_argument("spec", type=Path)
    export.add_argument("--onnx", type=Path, help="write an ONNX file")
    export.add_argument("--pt2", type=Path, help="write a torch.export program (.pt2)")
    _model_options(export)

    bench = commands.add_parser("bench", help="time eager / torch.compile / TensorRT / the "
                                "spec's reference on the same weights")
    bench.add_argument("spec", type=Path)
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--runs", type=int, default=10, help="timed runs (median reported)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    bench.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    bench.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    bench.add_argument("--backends", nargs="+", choices=BENCH_BACKENDS, default=BENCH_BACKENDS)
    _model_options(bench)

    _import_parsers(commands)

    schema = commands.add_parser("schema", help="export the spec JSON Schema (for editors)")
    schema.add_argument("-o", "--out", type=Path, help="file to write (default: stdout)")
    _inspect_parsers(commands)
    return parser


def _model_options(sub: argparse.ArgumentParser) -> None:
    """Options shared by commands that instantiate a spec's model."""
    sub.add_argument("--dims", nargs="+", metavar="SYM=MIN:OPT:MAX",
                     help="sizes of input symbols, e.g. T=1:128:1024 B=8")
    add_set_option(sub)
    sub.add_argument("--weights", type=Path, help="a state_dict file (torch.save) to load")
    sub.add_argument("--layout", help="convert --weights from this checkpoint layout (hf)")


def _compile_all(paths: list[Path], opt_level: int = 2, stop_after: str | None = None,
                 target: str = "torch", sets: list[str] | None = None) -> list[Compiled]:
    """Compile every spec before writing any: one bad spec means nothing is written."""
    from archcc.api import compile_spec

    compiled, errors = [], []
    for path in paths:
        try:
            compiled.append(compile_spec(path, opt_level=opt_level, stop_after=stop_after,
                                         target=target, sets=sets or ()))
        except ArchccError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise ArchccError(errors)
    return compiled


def _stop_after(dump: str | None) -> str | None:
    from archcc.ir.passes import PASS_NAMES

    if dump in (None, "final"):
        return None
    name = dump.removeprefix("after:")
    if name not in PASS_NAMES:
        raise SystemExit(f"archcc: unknown pass {name!r}; passes: {', '.join(PASS_NAMES)}")
    return name


def cmd_build(args: argparse.Namespace) -> int:
    stop = _stop_after(args.dump_ir)
    results = _compile_all(args.specs, args.opt_level, stop, args.target, args.sets)
    if args.dump_ir:
        from archcc.ir.graph import program_text

        for result in results:
            print(program_text(result.program), end="")
        return 0
    names = [r.name for r in results]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        print(f"archcc: several specs are named {sorted(duplicates)}", file=sys.stderr)
        return 1
    write_all({args.out / f"{r.name}.py": r.source for r in results})  # all or none
    for result in results:
        print(f"wrote {args.out / f'{result.name}.py'}")
        if args.explain:
            for line in result.program.passes_log or ["no pass changed anything"]:
                print(f"  {line}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Each spec compiled as ``build`` would, nothing written; an unchanged spec that checked
    out before answers from the cache (archcc.cache) without loading the compiler."""
    from archcc.cache import cached_verdict, record_verdict

    verdicts = {path: cached_verdict(path, args.sets) for path in args.specs}
    fresh = [path for path, verdict in verdicts.items() if verdict is None]
    for path, result in zip(fresh, _compile_all(fresh, sets=args.sets) if fresh else [],
                            strict=True):
        modules = len(result.program.modules)
        verdicts[path] = f"{result.program.source}: ok ({result.name}, {modules} classes)"
        record_verdict(path, args.sets, result.sources, verdicts[path], result.libraries)
    for verdict in verdicts.values():
        print(verdict)
    return 0


def _single_file(loaded: LoadedSpec) -> LoadedSpec:
    """fmt and convert rewrite one file; flattening an extends chain would lose it."""
    if loaded.composed:
        what = (f"derives block {loaded.derived_blocks[0]} with extends"
                if len(loaded.sources) == 1 and not loaded.sets
                else "extends or imports other specs")
        raise ArchccError(Diagnostic(SourceLoc(loaded.path), "", f"{loaded.path} {what}",
                                     "fmt and convert work on self-contained specs; "
                                     "`archcc resolve` prints the composed one"))
    return loaded


def cmd_fmt(args: argparse.Namespace) -> int:
    from archcc.parser import load_spec
    from archcc.parser.writer import SCHEMA_LINE, render_spec

    # every spec must be valid before any is rewritten
    loaded = [_single_file(load_spec(path)) for path in args.specs]
    for spec in loaded:
        text = render_spec(spec.spec, Path(spec.path).suffix, SCHEMA_LINE in spec.text)
        if args.write:
            write_atomic(Path(spec.path), text)
            print(f"formatted {spec.path}")
        else:
            print(text, end="")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from archcc.parser import load_spec
    from archcc.parser.writer import render_spec

    spec = _single_file(load_spec(args.spec)).spec
    write_atomic(args.out, render_spec(spec, args.out.suffix))
    print(f"wrote {args.out}")
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from archcc.parser.catalog import describe as describe_op
    from archcc.parser.catalog import list_ops

    text = list_ops() if args.blocks_command == "list" else describe_op(args.op)
    print(text, end="")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from archcc.parser import resolve_spec

    print(resolve_spec(args.spec, args.sets), end="")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from archcc.runtime.commands import export_command

    for path in export_command(args.spec, args.onnx, args.pt2, args.dims, args.sets,
                               args.weights, args.layout):
        print(f"wrote {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from archcc.runtime.bench import bench, format_report

    report = bench(args.spec, args.dims or (), args.sets, args.runs, args.warmup, args.device,
                   args.dtype, args.backends)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from archcc import plugins
    from archcc.parser.schema import json_schema

    plugins.load_installed()  # the schema lists installed plugin ops too
    text = json_schema()
    if args.out is None:
        print(text, end="")
    else:
        write_atomic(args.out, text)
        print(f"wrote {args.out}")
    return 0


def _import_parsers(commands) -> None:
    imports = commands.add_parser("import", help="write a spec from a Hugging Face config.json "
                                  "or a timm model name")
    sources = imports.add_subparsers(dest="import_source", required=True)
    hf = sources.add_parser("hf", help="from a config.json (gpt2, bert, roberta, distilbert, "
                            "t5, bart, vit, clip; decoder LLMs: llama, mistral, qwen2, qwen3, "
                            "gemma, gemma2, phi3, gpt_neox, olmo2, mixtral, qwen2_moe); loads "
                            "with "
                            "convert_state_dict(sd, 'hf')")
    hf.add_argument("config", type=Path, help="the model's config.json")
    hf.add_argument("--mask", action="store_true",
                    help="decoder LLMs: forward(input_ids, attention_mask) for padded batches "
                         "instead of generate()")
    timm = sources.add_parser("timm", help="from a timm model name (vit_*, swin_*, mixer_*); "
                              "loads with convert_state_dict(sd, 'timm')")
    timm.add_argument("model", help="e.g. vit_base_patch16_224")
    timm.add_argument("kwargs", nargs="*", metavar="KEY=VALUE",
                      help="timm.create_model keyword arguments, e.g. num_classes=10 "
                           "depths=2,2,6,2")
    diffusers = sources.add_parser("diffusers", help="from a diffusers UNet2DModel config.json; "
                                   "loads with convert_state_dict(sd, 'diffusers')")
    diffusers.add_argument("config", type=Path, help="the model's config.json")
    for sub in (hf, timm, diffusers):
        sub.add_argument("-o", "--out", type=Path, required=True,
                         help="the spec to write (.yaml or .arch)")
        sub.add_argument("--name", help="spec and module name (default: the file's stem)")


def cmd_import(args: argparse.Namespace) -> int:
    from archcc.importers import import_diffusers, import_hf, import_timm

    if args.import_source == "hf":
        out = import_hf(args.config, args.out, args.name, args.mask)
    elif args.import_source == "diffusers":
        out = import_diffusers(args.config, args.out, args.name)
    else:
        out = import_timm(args.model, args.out, args.kwargs, args.name)
    print(f"wrote {out}")
    return 0


# ------------------------------------------------------------ inspect: summary, diff, viz

def _inspect_parsers(commands) -> None:
    summary = commands.add_parser("summary", help="per-layer shapes, params, FLOPs, memory")
    summary.add_argument("spec", type=Path)
    _size_options(summary)
    summary.add_argument("--depth", type=int, default=1,
                         help="1 = model layers (default), 2 = inside blocks, 3 = inside ops")
    summary.add_argument("--json", action="store_true", help="machine-readable output")

    diff = commands.add_parser("diff", help="semantic diff of two architectures")
    diff.add_argument("a", type=Path, help="the old spec (YAML or .arch)")
    diff.add_argument("b", type=Path, help="the new spec")
    _size_options(diff)
    diff.add_argument("--set-a", action="append", default=[], metavar="KEY=VALUE",
                      help="override A only (--set overrides B only)")
    diff.add_argument("--set-both", action="append", default=[], metavar="KEY=VALUE",
                      help="override both specs (each must have the key)")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.add_argument("--html", type=Path, metavar="OUT.html",
                      help="also write a self-contained page with both graphs side by side")

    viz = commands.add_parser("viz", help="draw the block graph as SVG (and PNG)")
    viz.add_argument("spec", type=Path)
    viz.add_argument("-o", "--out", type=Path, required=True, help="the .svg to write")
    viz.add_argument("--png", action="store_true", help="also write a .png (needs Graphviz)")
    viz.add_argument("--after", metavar="PASS",
                     help="draw the IR after this pass, or 'none' for no passes "
                          "(default: all passes)")
    viz.add_argument("--expand", nargs="?", type=int, const=2, default=0, metavar="N",
                     help="open blocks (1) and lowered ops too (2, the default with no N)")
    viz.add_argument("--engine", choices=("auto", "dot", "python"), default="auto",
                     help="layout: Graphviz dot when installed (auto) or the built-in one")
    add_set_option(viz)


def _size_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dims", action="append", metavar="B=1,T=1024",
                        help="input sizes (B is the batch; default: the spec's dims)")
    add_set_option(parser)


def cmd_summary(args: argparse.Namespace) -> int:
    from archcc.inspect import parse_assignments, summarize, summary_text

    result = summarize(args.spec, parse_assignments(args.dims), args.sets, depth=args.depth)
    print(json.dumps(result.to_json(), indent=2) if args.json else summary_text(result),
          end="\n" if args.json else "")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from archcc.inspect import diff_specs, diff_text, parse_assignments

    result = diff_specs(args.a, args.b, parse_assignments(args.dims), set_a=args.set_a,
                        set_b=args.sets, set_both=args.set_both)
    if args.html:
        from archcc.inspect.html import diff_html

        write_atomic(args.html, diff_html(result))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(diff_text(result, color=color), end="")
    if args.html and not args.json:
        print(f"wrote {args.html}")
    return 0


def cmd_viz(args: argparse.Namespace) -> int:
    from archcc.inspect.viz import spec_graph, write_picture

    try:
        graph = spec_graph(args.spec, args.sets, args.after, args.expand)
        written = write_picture(graph, args.out, args.png, args.engine)
    except (ValueError, RuntimeError) as exc:
        print(f"archcc: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"build": cmd_build, "check": cmd_check, "fmt": cmd_fmt, "convert": cmd_convert,
                "schema": cmd_schema, "resolve": cmd_resolve, "blocks": cmd_blocks,
                "summary": cmd_summary, "diff": cmd_diff, "viz": cmd_viz,
                "export": cmd_export, "bench": cmd_bench, "import": cmd_import}
    try:  # installed plugin ops load when a command first needs the ops (archcc.plugins)
        return commands[args.command](args)
    except ArchccError as exc:
        print(render(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # an archcc bug: say so briefly unless debugging
        if args.debug:
            raise
        print(f"archcc: internal error: {type(exc).__name__}: {exc}\n"
              "hint: rerun with --debug for a traceback and report it", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
