"""Which words nixmod's config refuses in ``[build.slurm] extra_args`` as its own sbatch
options: stdin, one word a line; stdout, ``WORD OPTION`` (the option it reads as) or ``WORD -``."""

from __future__ import annotations

import sys

from nixmod.scheduler_options import reserved_sbatch_option

if __name__ == "__main__":
    for word in sys.stdin.read().split():
        print(word, reserved_sbatch_option([word + "=x"]) or "-")
