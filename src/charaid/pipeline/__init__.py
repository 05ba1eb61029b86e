"""The stages one picture goes through, in order: file -> image (``images``) -> faces and crops
(``prepare``, with a detector from :mod:`charaid.models`) -> matches (``match``). Pure of storage:
the gallery and the answer are :mod:`charaid.recognition`'s."""
