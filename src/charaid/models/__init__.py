"""Every network charaid runs, each a plug with a model id: face detectors (charaid's own
``facedet``, animeface-2009, the LBP cascade), embedders (ImageNet EfficientNet-Lite0, colour
blocks, models tuned by ``charaid train``) and the colour sampling the detector's landmarks feed.
Nothing here knows about galleries, files on disk or jobs: see :mod:`charaid.models.zoo` for the
id -> loader registry."""
