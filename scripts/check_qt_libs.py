"""Check the system libraries Qt's xcb platform plugin needs, before ``make run`` starts the app.

PySide6's wheels bundle Qt but not these X11 helper libraries; without them Qt aborts with
"could not load the Qt platform plugin xcb" and no hint of what is missing. Each library is
opened by its soname with ``dlopen`` (what Qt itself does), so the check cannot disagree with
Qt. Exit status 1 and one ``apt-get install`` line when something is missing; 0 otherwise, and
always 0 off Linux or when Qt will not use xcb (offscreen, wayland).
"""

from __future__ import annotations

import ctypes
import os
import sys

#: soname -> Debian/Ubuntu package that provides it.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
}


def missing_libraries(libraries: dict[str, str] = XCB_LIBRARIES) -> list[str]:
    """The packages whose library cannot be opened, in the order given."""
    missing = []
    for soname, package in libraries.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    return missing


def install_line(packages: list[str]) -> str:
    return "sudo apt-get install -y " + " ".join(packages)


def main() -> int:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform.split(":")[0] in ("offscreen", "wayland"):
        return 0
    missing = missing_libraries()
    if not missing:
        return 0
    print(
        "vit-inspector: error: Qt's xcb plugin needs system libraries that are missing "
        f"({', '.join(missing)}); install them with:\n    {install_line(missing)}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
