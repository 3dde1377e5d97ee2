"""Start the ViT Inspector desktop app: ``python main.py [IMAGE ...] [--checkpoint C]``.

``--screenshot PATH`` renders the window offscreen to a PNG and exits.
"""

import gc
import sys

# The cyclic collector stays off until the first map is painted: torch's import leaves ~360k
# tracked objects, and each full collection walks them all (~70-100 ms here), several times
# during start-up. inspector.gui.app collects once and freezes them afterwards.
gc.disable()

from inspector.gui.app import main  # noqa: E402 - after gc.disable(), on purpose

if __name__ == "__main__":
    sys.exit(main(hold_gc=True))
