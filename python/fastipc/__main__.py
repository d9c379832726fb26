"""``python -m fastipc``: the ``fastipc`` command."""

import sys

from .cli import main

sys.exit(main())
