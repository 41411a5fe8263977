"""The schedulers' grammars: which ``extra_args`` nixmod must refuse, and their times.

Both backends set some of sbatch's / qsub's options themselves (to find,
throttle and follow their builds); a site's ``[build.slurm] extra_args`` or
``[build.pbs] extra_args`` that overrode one would make nixmod lose its
jobs. The config loader checks the options when it reads them, and the
backends rely on that check; so the grammars live here, below both (a leaf:
this module imports nothing of nixmod), rather than in one backend that the
config would have to import upward. ``scheduler_seconds`` reads both
schedulers' time strings (a SLURM time limit, a PBS walltime).
"""

from __future__ import annotations

import re

__all__ = ["reserved_sbatch_option", "reserved_qsub_option", "scheduler_seconds"]

#: sbatch options the SLURM backend sets itself or relies on (long form: short form). A job
#: renamed, re-commented, re-scripted or sent elsewhere by extra_args would look vanished to
#: nixmod, or could not be joined; a requeued one would run twice (see builds/slurm.py).
_RESERVED_SBATCH = {"--job-name": "J", "--comment": "", "--array": "a", "--output": "o",
                    "--error": "e", "--dependency": "d", "--chdir": "D", "--parsable": "",
                    "--wrap": "", "--partition": "p", "--requeue": "", "--no-requeue": "",
                    "--hold": "H"}
#: sbatch's short options that take a value (the rest of a cluster like -vJx is that value)
_SBATCH_SHORT_WITH_VALUE = set("AabcCDdeGiJLMmNnoptSwx")


def reserved_sbatch_option(args: list[str]) -> str | None:
    """The nixmod-owned sbatch option that one of ``args`` would set, if any.

    sbatch parses with getopt_long, which takes any unambiguous prefix of a
    long option for the option (``--comm=x`` is ``--comment=x``), and an
    ambiguous one is an error. So every ``--X`` where X starts one of our
    options is refused: either sbatch would read it as ours, or it would
    refuse it anyway. No sbatch option is itself a prefix of one of ours, so
    nothing sbatch reads as another option is refused (tests check this
    against the installed ``sbatch --help``). Short options may be bundled
    (``-vJname``): each letter up to the first that takes a value counts.
    """
    for arg in args:
        if arg == "--":
            return "--"          # sbatch would take the next word as the batch script
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            if len(option) > 2:
                taken = [long for long in _RESERVED_SBATCH if long.startswith(option)]
                if option in taken:
                    return option
                if len(taken) == 1:
                    return f"{taken[0]} (as {option})"
                if taken:
                    return f"{option} (a prefix of {', '.join(taken)})"
        elif arg.startswith("-") and len(arg) > 1:
            for letter in arg[1:]:
                taken = [long for long, short in _RESERVED_SBATCH.items() if short == letter]
                if taken:
                    return f"{taken[0]} (as -{letter})"
                if letter in _SBATCH_SHORT_WITH_VALUE or not letter.isalpha():
                    break
    return None




#: qsub's options (its getopt string, OpenPBS 23.06: src/cmds/qsub_sup.c): letter -> takes a value
_QSUB_OPTIONS = {letter: value for letter, value in
                 re.findall(r"([a-zA-Z])(:?)", "a:A:c:C:e:fhIj:J:k:l:m:M:N:o:p:q:r:R:S:u:v:VW:XzP:")}
#: options the backend sets itself or that would break what it relies on, and why
_RESERVED_QSUB = {
    "N": "the job name (nixmod finds its jobs by it)",
    "J": "the array (nixmod sets it from max_concurrent)",
    "o": "the output path", "e": "the error path", "j": "the output join",
    "k": "where output is kept", "v": "the job's variables (the drv hashes travel there)",
    "V": "exporting the environment, which PBS would show to every user",
    "q": "the queue (set [build.pbs] queue)", "A": "the account (set [build.pbs] account)",
    "h": "a hold: a held build never runs",
    "I": "an interactive job", "X": "X11 forwarding", "z": "quiet mode (nixmod reads the job id)",
    "f": "foreground mode", "u": "the user list", "R": "the remove-files option",
}
#: -W attributes and -l resources the backend sets itself
_RESERVED_W = {"depend", "block", "max_run_subjobs"}
_RESERVED_L = {"walltime": "walltime", "select": "ncpus/mem", "ncpus": "ncpus", "mem": "mem"}

def reserved_qsub_option(args: list[str]) -> str | None:
    """Why ``args`` (extra_args) may not go to qsub, or None when they may.

    Walks them as qsub's getopt does: ``-Nname`` and ``-N name`` both set
    the name, letters may be bundled (``-hz``), and a word that is not an
    option would become the job's command.
    """
    words = iter(args)
    for word in words:
        if word == "--" or not word.startswith("-") or word == "-":
            return (f"may hold only qsub options; {word!r} would become the job's command "
                    "(nixmod sets the command itself)")
        if word.startswith("--"):
            return f"may not hold {word!r}: qsub has no long options but --version"
        letters = word[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter not in _QSUB_OPTIONS:
                return f"has {'-' + letter!r}, which is not a qsub option"
            if letter in _RESERVED_QSUB:
                return (f"may not set -{letter} ({_RESERVED_QSUB[letter]}): nixmod sets it or "
                        "depends on it")
            if not _QSUB_OPTIONS[letter]:
                continue
            value = letters or next(words, None)
            letters = ""
            if value is None:
                return f"ends with -{letter}, which needs a value"
            keys = {part.split("=", 1)[0].strip() for part in value.split(",")}
            if letter == "W" and keys & _RESERVED_W:
                return f"may not set -W {sorted(keys & _RESERVED_W)[0]}: nixmod sets it itself"
            if letter == "l":
                taken = sorted(keys & set(_RESERVED_L))
                if taken:
                    return (f"may not set -l {taken[0]}: set [build.pbs] "
                            f"{_RESERVED_L[taken[0]]} instead")
    return None


def scheduler_seconds(text: str, *, bare_unit: int) -> int | None:
    """Seconds in a scheduler's time string; None when unlimited or not a time.

    SLURM: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS`` (``bare_unit=60``: a lone number is minutes) and
    ``UNLIMITED``; a PBS walltime: ``[[HH:]MM:]SS`` (``bare_unit=1``).
    """
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "-1", ""):
        return None
    days, dash, clock = text.rpartition("-")
    parts = clock.split(":")
    if (dash and not days.isdigit()) or len(parts) > 3 or not all(p.isdigit() for p in parts):
        return None
    numbers = [int(p) for p in parts]
    if dash:
        hours, minutes, seconds = (numbers + [0, 0])[:3]
    elif len(numbers) == 3:
        hours, minutes, seconds = numbers
    elif len(numbers) == 2:
        hours, (minutes, seconds) = 0, numbers
    else:
        return numbers[0] * bare_unit
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds
