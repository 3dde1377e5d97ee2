"""``python -m inspector.cli`` (and ``torchrun -m inspector.cli``)."""

import sys

from . import main

sys.exit(main())
