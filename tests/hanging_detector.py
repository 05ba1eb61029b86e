"""A detector plug for tests/test_watchdog.py: never returns on a picture 77 px wide."""

import time

from charaid.models.detectors import Box, Detector, Face


class HangingDetector(Detector):
    name = "hanging"

    def _detect(self, image):
        while image.width == 77:
            time.sleep(3600)
        return [Face(Box(10, 10, 40, 40), 0.9, self.name)]
