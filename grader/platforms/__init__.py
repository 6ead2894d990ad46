"""Platform exports: Gradescope, nbgrader and LMS gradebooks, each rendered from the results document."""
