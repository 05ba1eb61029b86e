"""charaid serve: the web pages and REST API, a thin layer over the library."""

from charaid.web.app import create_app

__all__ = ["create_app"]
