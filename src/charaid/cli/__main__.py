"""``python -m charaid.cli``: the same as the ``charaid`` command."""

import sys

from . import main

sys.exit(main())
