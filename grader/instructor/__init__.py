"""Instructor tools, never shipped to students: checks, promises, stubs, the release and mutation testing."""
