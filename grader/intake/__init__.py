"""The submission intake: what was handed in, and by whom (folders, archives, LMS downloads)."""
