"""Fixtures for testing your own flows with pytest (being built: issue 12 item 6)."""
