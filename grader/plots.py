"""``python -m grader plots``: draw the exercises' figures with the graded code (a student's or the reference).

The drawing functions live in the exercise files themselves (outside the solution blocks), so the plots use
whatever the student wrote: ``save_heatmap`` in ex2 and ``save_scaling_plot`` in ex4.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from grader.course import TESTS_DIR, load_manifest, resolve_target


def plots(tests_dir: Path = TESTS_DIR) -> list[tuple[str, str, str]]:
    """(module, drawing function, PNG name) for every exercise whose manifest entry has a ``plot``."""
    return [(meta["name"], meta["plot"]["function"], meta["plot"]["file"])
            for meta in load_manifest(tests_dir).values() if meta.get("plot")]


def _load(folder: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"plotted_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_plots(target: str, out: Path, on_start=None) -> list[tuple[str, Path | str]]:
    """Returns (exercise, path written or the reason it could not be drawn) for each plot; ``on_start(exercise,
    path)`` is called before each is drawn."""
    from llm_basics.threads import matmul_flops, use_threads_for

    # The figures' models are tiny (the heatmap's largest product, (8*32, 64) @ (64, 320), is 10 MFLOP): one
    # thread, which also keeps them quick on a busy machine (the heatmap's 40 training steps took 2.3 s with one
    # thread and 10.6 s with torch's two while other programs kept both cores busy).
    use_threads_for(matmul_flops(8 * 32, 64, 320))
    folder = resolve_target(target)
    done = []
    for name, function, filename in plots():
        if on_start:
            on_start(name, out / filename)
        try:
            path = getattr(_load(folder, name), function)(out / filename)
            done.append((name, Path(path)))
        except NotImplementedError as exc:
            done.append((name, f"not drawn: {exc} (finish the exercise first)"))
        except Exception as exc:  # noqa: BLE001 - a student's bug must not hide the other plot
            done.append((name, f"not drawn: {type(exc).__name__}: {exc}"))
    return done


def add_plots_parser(sub) -> None:
    p = sub.add_parser("plots", help="write the top-k heatmap (ex2) and the scaling plot (ex4) as PNG files")
    p.add_argument("--target", default="exercises", help="exercises (default), solutions, or a folder of exN_*.py")
    p.add_argument("--out", default="plots", help="folder for the PNG files (default plots/)")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    def starting(name: str, path: Path) -> None:
        print(f"{name}: drawing {path}...", flush=True)

    for name, result in make_plots(args.target, out, on_start=starting):
        print(f"{name}: {result}")
    return 0
