"""nixmod: Nix without root on HPC clusters.

The core (everything but ``cli`` and ``tui``) never imports Textual, so the
CLI starts fast and the batch jobs that finish a build stay light.
"""

__version__ = "0.1.0"
