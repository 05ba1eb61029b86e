"""charaid serve: the web pages and REST API, a thin layer over the library."""

from .app import create_app

__all__ = ["create_app"]
