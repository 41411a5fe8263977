"""Which words nixmod's config refuses in ``[build.slurm] extra_args`` as its own sbatch
options: stdin, one word a line; stdout, ``WORD OPTION`` (the option it reads as) or ``WORD -``."""

from __future__ import annotations

import sys

from nixmod.config import _reserved_sbatch_option

if __name__ == "__main__":
    for word in sys.stdin.read().split():
        print(word, _reserved_sbatch_option([word + "=x"]) or "-")
