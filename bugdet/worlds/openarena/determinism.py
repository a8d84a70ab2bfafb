"""Makes the engine's random numbers repeat, so replays of one demo are pixel-identical.

ioquake3 seeds libc's ``rand()`` from ``/dev/urandom`` at start-up (``Com_InitRand``), and the
game code draws from it for purely visual things: explosion sprite rotation, dynamic light
flicker, impact marks, brass and gibs. Two replays of the same demo then differ wherever such an
effect is on screen (up to the whole frame next to an explosion), which would pass for a bug in
the per-pixel ground truth. A ten-line ``LD_PRELOAD`` library replaces ``srand`` so the engine
always seeds with the session's seed: every replay draws the same numbers and renders the same
pixels (measured: no pixel differs by more than the diff level over 140 frames of explosions).
It changes no rendering and no game rule. It is compiled with the system C compiler on first use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from bugdet.errors import ConfigError

SEED_ENV = "BUGDET_OPENARENA_SEED"

SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

/* srand() that ignores its argument and seeds with $BUGDET_OPENARENA_SEED (default 1) */
void srand(unsigned int ignored) {
    void (*real_srand)(unsigned int) = (void (*)(unsigned int))dlsym(RTLD_NEXT, "srand");
    const char *text = getenv("BUGDET_OPENARENA_SEED");
    (void)ignored;
    real_srand(text ? (unsigned int)strtoul(text, NULL, 10) : 1u);
}
"""


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def require_compiler() -> str:
    """The C compiler, or the one-line error naming the package."""
    cc = compiler()
    if cc is None:
        raise ConfigError("no C compiler (cc) found: it builds the small library that makes OpenArena replays "
                          "repeatable; install the Debian package: apt-get install gcc")
    return cc


def build_shim(directory: Path) -> Path:
    """Compiles the ``srand`` shim into ``directory`` (reused when already there)."""
    cc = require_compiler()
    digest = hashlib.sha256(SHIM_SOURCE.encode()).hexdigest()[:12]
    directory.mkdir(parents=True, exist_ok=True)
    lib = directory / f"bugdet-fixrand-{digest}.so"
    if lib.is_file():
        return lib
    source = directory / f"bugdet-fixrand-{digest}.c"
    source.write_text(SHIM_SOURCE, encoding="utf-8")
    tmp = lib.with_name(lib.name + f".{os.getpid()}.tmp")
    done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(source), "-ldl"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ConfigError(f"could not compile the OpenArena rand shim with {cc}: {done.stderr.strip()[:300]}")
    os.replace(tmp, lib)
    return lib


def seeded_env(shim: Path, seed: int) -> dict[str, str]:
    """The environment for a game run: the shim preloaded, the engine's rand() seeded with ``seed``."""
    env = dict(os.environ)
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = f"{shim} {preload}".strip()
    env[SEED_ENV] = str(seed % (2**32))
    return env
