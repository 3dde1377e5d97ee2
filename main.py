"""Start the ViT Inspector desktop app: ``python main.py [IMAGE ...] [--checkpoint C]``.

``--screenshot PATH`` renders the window offscreen to a PNG and exits.
"""

import sys

from inspector.gui.app import main

if __name__ == "__main__":
    sys.exit(main())
