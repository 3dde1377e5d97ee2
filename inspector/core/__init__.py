"""Pure computation on torch and numpy. Never imports Qt or pyqtgraph (tests enforce it)."""
