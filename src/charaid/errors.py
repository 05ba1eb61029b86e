"""Domain errors. Each subclasses the built-in a caller would expect to catch."""

from __future__ import annotations

from pathlib import Path

from charaid.names import shown


class ImageError(ValueError):
    """An input that cannot be used as an image. ``str()`` is one line: the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(shown(f"{self.path}: {reason}"))


class EmbeddingSpaceError(ValueError):
    """Vectors from two different models (or dimensions) would be compared or stored together."""


class UnknownCharacterError(KeyError):
    """A character name that is not in the gallery."""

    def __init__(self, name: str, known: list[str] | None = None):
        self.name = name
        hint = ""
        if known is not None:
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            hint = f" (known: {shown})" if known else " (the gallery is empty)"
        super().__init__(f"no character named {name!r} in the gallery{hint}")

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line.
        return str(self.args[0])


class GalleryError(RuntimeError):
    """The gallery file cannot be used (newer schema, not a gallery, locked...)."""
