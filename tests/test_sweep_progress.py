"""The sweep's progress line: counts, and the time left from the pace of the trials done."""

from quokka_ray.sweep.progress import SweepProgress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_time_left_comes_from_the_trials_done_by_this_driver():
    clock = Clock()
    progress = SweepProgress(total=10, clock=clock)
    assert progress.line(done=2, running=2) == (
        "0s | 2/10 done, 2 running, 6 waiting, time left unknown")  # 2 done before a resume
    clock.now += 120
    # 2 trials done in 120 s: 60 s a trial, 6 trials left.
    assert progress.line(done=4, running=2) == (
        "2m00s | 4/10 done, 2 running, 4 waiting, about 6m00s left")
    clock.now += 7200
    assert progress.line(done=9, running=1).endswith("9/10 done, 1 running, 0 waiting, "
                                                     "about 17m26s left")  # 7320 s / 7 trials
    progress.reset()
    assert progress.line(done=9, running=1).startswith("0s | ")
