"""The judge: the pytest session that runs the tests and gives the verdicts, and never runs student code."""
