# An OpenPBS execjob_end hook of the test rig (tests/cluster/pbs.sh installs it).
# A job whose id is marked in /run/nixmod-tests-slow-exit/ stays exiting (state
# E) for 8 s, as on a busy node; every other job passes straight through. The
# PBS tests mark one to meet PBS's lost dependency release on purpose.
import os
import time

import pbs

event = pbs.event()
if os.path.exists("/run/nixmod-tests-slow-exit/" + str(event.job.id)):
    time.sleep(8)
event.accept()
