"""The desktop inspector: the only package that imports PySide6 and pyqtgraph.

It holds no mathematics: every number it shows comes from ``inspector.core``.
"""
