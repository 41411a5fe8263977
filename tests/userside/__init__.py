"""Scripts a test runs as a real unprivileged user, with the installed nixmod.

Each is a module (typed, checked by mypy with ``nixmod/``), not a string of
Python in a test: a renamed nixmod function fails the type check, not a rig
run. A test runs one with ``rig.userside_script(NAME)``, a copy every user
can read (the checkout may sit where test users cannot), as
``VENV/bin/python -I SCRIPT ARGS``: ``-I`` so that nothing from the cwd or the
environment's PYTHONPATH shadows the installed nixmod.
"""
