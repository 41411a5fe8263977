"""What the installed nixmod says of itself, for tests that must match it: one name, printed.

``demo-dir``: the bundled demo channels; ``slurm-job-script``: the SLURM batch script a
genuine build job runs; ``pbs-job-code``: the code a genuine PBS build job runs.
"""

from __future__ import annotations

import sys

from nixmod.builds.pbs import JOB_CODE
from nixmod.builds.slurm_jobs import JOB_SCRIPT
from nixmod.config import DEMO_DIR

FACTS = {"demo-dir": str(DEMO_DIR), "slurm-job-script": str(JOB_SCRIPT), "pbs-job-code": JOB_CODE}

if __name__ == "__main__":
    print(FACTS[sys.argv[1]])
