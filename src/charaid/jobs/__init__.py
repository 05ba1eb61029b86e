"""Whole jobs over folders and galleries: enrol, evaluate, sort, the labelling queue, ``charaid
train``, moving a gallery to another detector, distributed indexing, and the bundled demo."""
