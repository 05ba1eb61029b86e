"""``python -m charaid.cli``: the same as the ``charaid`` command."""

import sys

from charaid.cli import main

sys.exit(main())
