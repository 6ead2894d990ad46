"""pip's configuration, translated for uv (grader/install.py; stdlib only, Python 3.8+): uv does not read pip's.

A sibling of install.py, imported by it both as ``grader.install_pip_settings`` and, when install.py runs as a
script before anything is installed, as ``install_pip_settings``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

# ----------------------------------------------------------------------------------------------------------
# pip's configuration, translated for uv
# ----------------------------------------------------------------------------------------------------------

# pip setting -> uv option; several values in one pip setting are separated by whitespace
UV_FLAGS = {"find-links": "--find-links", "index-url": "--default-index", "extra-index-url": "--index",
            "constraint": "--constraint"}


def pip_config(python: str = sys.executable, run=subprocess.run) -> dict:
    """pip's settings as ``pip config list`` prints them (``global.find-links='/x'``, ``:env:.constraint=...``):
    {setting: [values]}, the environment's ``PIP_*`` winning over the files, as in pip."""
    try:
        proc = run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    settings: dict = {}
    for scope in ("global", "install", ":env:"):  # later scopes win, as they do in pip
        for line in proc.stdout.splitlines():
            found = re.match(r"^(\S+?)\.([\w-]+)='(.*)'$", line.strip())
            if found and found.group(1) == scope:
                settings[found.group(2)] = found.group(3).split()
    return settings


def uv_options(settings: dict) -> list:
    """uv's options for pip's settings; the index strategy is pip's own (see the module's docstring)."""
    options = []
    for key, flag in UV_FLAGS.items():
        for value in settings.get(key, []):
            options += [flag, value]
    if settings.get("no-index") in (["1"], ["true"], ["yes"], ["on"]):
        options.append("--no-index")
    if any(k in settings for k in ("find-links", "extra-index-url")):
        options += ["--index-strategy", "unsafe-best-match"]
    return options


def uv_environment(settings: dict) -> dict:
    """Environment variables for uv from pip's settings uv has no option for (a CA bundle, a timeout)."""
    env = {}
    if settings.get("cert"):
        env["SSL_CERT_FILE"] = settings["cert"][0]
    if settings.get("timeout") or settings.get("default-timeout"):
        env["UV_HTTP_TIMEOUT"] = (settings.get("timeout") or settings["default-timeout"])[0]
    return env
