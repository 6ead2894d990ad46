"""nbgrader: the lesson as a notebook course, one step per module.

- ``notebook``: the instructor's notebook, made from the single source (cells, lesson text, walkthroughs);
- ``course_folder``: the course folder (``nbgrader_config.py``, README, notebook, visible suites), starting
  nbgrader in it, and sample hand-ins;
- ``submissions``: the code of a submitted notebook's ``%%exercise`` cells, and which notebook is whose;
- ``scores``: the judge's grade of that code, what each test cell shows, a row of the grades file;
- ``preprocessors``: the steps nbgrader runs (stubs, judge before the kernel, the confined kernel, clean-up);
- ``exporter``: ``--exporter grader.platforms.nbgrader.exporter.ExerciseScoresExport``;
- ``cell``: the ``%%exercise`` and ``%%graded_tests`` magics (``%load_ext grader.platforms.nbgrader.cell``);
- ``kernel``: the kernel launcher (``-m grader.platforms.nbgrader.kernel``) that hides the hidden tests;
- ``cli``: ``python -m grader nbgrader``.

Only ``preprocessors`` imports nbgrader at import time (nbgrader's config loads it); ``exporter`` makes its class
on first use. So ``python -m grader`` stays fast without nbgrader installed.
"""
