"""The ``steerid`` command line: ``steerid vector inspect FILE``, ``steerid vector convert IN OUT`` and
``steerid init`` (a study config for a model, a vector file and a trait file).

A file that cannot be read or written as asked ends the command with exit status 1 and the
reason on stderr; usage errors are argparse's (status 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from steerid.interchange import FORMATS, VectorFile, read_vector, write_vector
from steerid.interchange.svec import INDEX_MEANINGS

__all__ = ["build_parser", "main"]


def _describe(vector_file: VectorFile) -> list[str]:
    coefficient = "none recorded" if vector_file.coefficient is None else f"{vector_file.coefficient:g}"
    lines = [
        f"file: {vector_file.source_path}",
        f"format: {vector_file.source_format} - {FORMATS[vector_file.source_format].description}",
        f"model hint: {vector_file.model_hint or 'none'}",
        f"coefficient: {coefficient}",
        f"width: {vector_file.width}",
        f"layers: {len(vector_file.layers)} ({', '.join(map(str, vector_file.layers))})",
        "layer norm:",
        *(f"  {layer:>4}  {norm:.6g}" for layer, norm in vector_file.norms().items()),
    ]
    if vector_file.metadata:
        lines += ["metadata:", *(f"  {key}: {value}" for key, value in vector_file.metadata.items())]
    return lines


def _inspect(args: argparse.Namespace) -> None:
    vector_file = read_vector(args.file, args.format, index_means=args.index_means)
    print("\n".join(_describe(vector_file)))


def _convert(args: argparse.Namespace) -> None:
    vector_file = read_vector(args.source, args.source_format, index_means=args.index_means)
    written = write_vector(vector_file, args.target, args.target_format)
    print(f"wrote {args.target} ({written.name}, layers {', '.join(map(str, vector_file.layers))})")


def _add_index_means(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-means",
        choices=INDEX_MEANINGS,
        help="svec only: whether index N is the output of block N or its input (the file does not say)",
    )


def _add_vector_commands(commands: argparse._SubParsersAction) -> None:
    vector = commands.add_parser("vector", help="read, inspect and convert steering-vector files")
    actions = vector.add_subparsers(dest="action", required=True)
    names = sorted(FORMATS)
    writable = sorted(name for name, entry in FORMATS.items() if entry.write is not None)

    inspect = actions.add_parser("inspect", help="print a vector file's format, layers, width, norms and hints")
    inspect.add_argument("file")
    inspect.add_argument("--format", choices=names, help="the file's format (default: guessed from its name)")
    _add_index_means(inspect)
    inspect.set_defaults(run=_inspect)

    convert = actions.add_parser("convert", help="rewrite a vector file in another format")
    convert.add_argument("source")
    convert.add_argument("target")
    convert.add_argument("--from", dest="source_format", choices=names, help="default: guessed from SOURCE's name")
    convert.add_argument("--to", dest="target_format", choices=writable, help="default: guessed from TARGET's name")
    _add_index_means(convert)
    convert.set_defaults(run=_convert)


def _init(args: argparse.Namespace) -> None:
    from steerid.engine.site import site_label
    from steerid.pipeline.study_config import choose_study, write_study_config

    choice = choose_study(args.model, args.vector, args.trait_file, args.layer, args.strength)
    write_study_config(args.output, choice, overwrite=args.force)
    print(
        f"wrote {args.output}: {choice.trait} on {choice.spec} at layer {site_label(choice.layer)}, "
        f"v from {choice.vector_path}\n"
        f"run it with: snakemake --cores 8 --configfile {args.output}"
    )


def _add_init_command(commands: argparse._SubParsersAction) -> None:
    init = commands.add_parser("init", help="write a commented study config: a model, a vector file, a trait file")
    init.add_argument("--model", required=True, help="embedded name (smollm2-135m, gemma3-270m), folder or hub id")
    init.add_argument("--vector", required=True, help="the vector file to test (format from its name)")
    init.add_argument("--trait-file", required=True, help="the trait file (schemas/trait.schema.json)")
    init.add_argument(
        "--layer",
        help="layer to steer, several at once (12+15), or all of the file's (default: its only, or middle, layer)",
    )
    init.add_argument("--strength", type=float, help="‖v‖ in mean residual norms (default: the file's own length)")
    init.add_argument("--output", "-o", default="study.yaml", help="config file to write (default: study.yaml)")
    init.add_argument("--force", action="store_true", help="replace an existing config file")
    init.set_defaults(run=_init)


def build_parser() -> argparse.ArgumentParser:
    """The ``steerid`` argument parser; each command stores the function that runs it as ``run``."""
    parser = argparse.ArgumentParser(prog="steerid", description="Steering-vector identifiability tests and files.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_vector_commands(commands)
    _add_init_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: the process's arguments); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileExistsError) as err:  # VectorFileError is a ValueError
        print(f"steerid: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
