"""nbgrader: the course folder, the notebooks, the kernel launcher and the scores export."""
