"""The ``charaid`` command: a thin layer over the library.

Exit status: 0 when every input was used, 2 when any input failed (it is reported on stderr and,
with ``--json``, in the ``error`` field), 1 for a usage or set-up error, 3 when ``train`` stopped
at its time limit (running it again resumes). With ``--json`` stdout
holds one JSON object per line and nothing else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from charaid.cli.common import EXIT_INPUT, EXIT_OK, EXIT_SETUP, EXIT_STOPPED
from charaid.cli.parser import build_parser
from charaid.errors import EmbeddingSpaceError, GalleryError, UnknownCharacterError
from charaid.names import one_line
from charaid.storage.schema import DatabaseError

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_SETUP", "EXIT_INPUT", "EXIT_STOPPED"]


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a name no encoder takes must never end a run
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: 0 after --help/--version, 2 for a usage error (which the README calls 1)
        return EXIT_OK if not e.code else EXIT_SETUP
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(
            "charaid: interrupted" + ("; run `charaid train` again to resume" if args.command == "train" else ""), file=sys.stderr
        )
        return 130
    except (
        FileNotFoundError,
        NotADirectoryError,
        ValueError,
        GalleryError,
        EmbeddingSpaceError,
        UnknownCharacterError,
        RuntimeError,
        OSError,
        DatabaseError,
    ) as e:
        print(f"charaid: error: {one_line(_described(e))}", file=sys.stderr)
        return EXIT_SETUP


def _described(e: BaseException) -> str:
    """One line for a set-up error; an OSError names its file and the reason, not a traceback."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, DatabaseError):
        return f"database: {e}"
    return str(e)
