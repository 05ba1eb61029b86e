"""The face record: one face, cut out of its picture, with what was learnt about it on the way.

A :class:`FaceCrop` is a record, made once where the face is cut (``charaid.pipeline.prepare``),
and every stage after reads it: the embedders its image and its colours, storage its image.
Nothing rides on the PIL image itself.

Its colours (charaid.models.colours) are sampled in the picture the face was detected in, at
the detector's landmarks: cheap and exact. A crop that comes without them (a folder of crops
enrolled with ``--no-detect``, a crop re-read from a gallery, a bare image given to the library)
has ``searched`` False; the colour block then looks for the face inside the crop again
(:func:`charaid.models.colours.search_colours`, about 40 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from charaid.models import colours as cues
from charaid.models.detectors import Face


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A square face crop and where it came from."""

    image: Image.Image
    #: The detected face it was cut around; None for a crop made elsewhere (``--no-detect``).
    face: Face | None = None
    #: The nine raw Lab colours of hair, skin and eyes; None when none were found.
    colours: np.ndarray | None = None
    #: True once the colours were looked for (then None means: none found, a zero block).
    searched: bool = False

    @classmethod
    def of(cls, crop: FaceCrop | Image.Image) -> FaceCrop:
        """``crop`` as a record: a bare image is a crop about which nothing is known yet."""
        return crop if isinstance(crop, FaceCrop) else cls(crop)

    def with_colours(self) -> FaceCrop:
        """This crop with its colours looked for (searched inside the crop when not known)."""
        return self if self.searched else replace(self, colours=cues.search_colours(self.image), searched=True)
