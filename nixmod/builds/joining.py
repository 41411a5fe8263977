"""Following another user's job: the limits every backend applies alike.

A joined request waits for a job that its owner controls and can make wait
for ever (a start time years ahead, a hold, a resource request no node
has, a dependency on a job that never ends). Each backend reads its
scheduler's own record of the job (``slurm.joinable``, ``pbs_jobs._why_not``);
what counts as too long is decided here, once, for all of them:

* a job whose time limit is longer than the joiner's own (or unlimited) is
  not joined: following it could take longer than building;
* a job that waits for a start time more than ``START_SLACK`` ahead is not;
* a request follows a job for at most the joiner's own time limit, counted
  from the moment it joined, pending and running together
  (``followed_too_long``): the most a hostile job can cost a joiner, after
  which the request builds the drv itself, once.

None for a time limit means "unlimited" throughout.
"""

from __future__ import annotations

from nixmod.builds.state import BuildRecord

#: a start time no further ahead than this is "now" (clocks and rounding differ a little)
START_SLACK = 60.0


def longer_than_mine(theirs: float | None, mine: float | None) -> bool:
    """Is a job's time limit ``theirs`` longer than the joiner's ``mine`` (seconds)?"""
    return mine is not None and (theirs is None or theirs > mine)


def starts_too_late(start: float | None, now: float) -> bool:
    """Does a job wait for a start time (epoch seconds) that is not about now?"""
    return start is not None and start > now + START_SLACK


def followed_too_long(record: BuildRecord, mine: float | None, limit_text: str,
                      now: float) -> str | None:
    """Why a joined ``record`` must stop following its job: it has followed it longer than
    the joiner's own time limit ``mine`` (seconds; ``limit_text`` as configured). None: not yet.

    Counted from the join (``joined_at``; a record from before that column, from
    ``created``), so queued and running time both count: whatever a job's owner
    does, a joiner waits at most about one build time limit, plus one of its own build.
    """
    since = record.joined_at or record.created
    if mine is None or not since or now - since <= mine:
        return None
    return (f"followed job {record.job} for {int((now - since) // 60)} min "
            f"{int((now - since) % 60)} s, longer than the build time limit ({limit_text})")
