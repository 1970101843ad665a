"""A separate writer process for the progress-store tests (run with the test's PYTHONPATH).

    python progress_worker.py URL TRAINEE N NEEDLES [GO_FILE]

Waits for GO_FILE to exist (so many workers start at once), opens the store (running the
migrations if nobody has yet) and saves N sessions of NEEDLES needles each, printing
each saved uid on its own line as soon as it is committed."""

import os
import sys
import time

from imssim.core.training.progress import ProgressStore, SessionRecord


def main():
    url, trainee, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    go = sys.argv[5] if len(sys.argv) > 5 else None
    while go and not os.path.exists(go):
        time.sleep(0.01)
    store = ProgressStore(url)
    for i in range(n):
        rec = SessionRecord(trainee, "l5-radiculopathy-low-back", "practice", float(i % 100), i % 2 == 0, False,
                            {"targeting": 0.5}, {"coverage": {"value": 50.0, "score": 0.5}}, {"twitch": i},
                            ["needle off target"],
                            [{"number": j + 1, "structure": f"muscle_{j}", "target": j % 2 == 0, "level_error": 0,
                              "sentence": "x" * 200} for j in range(k)], level_error=0.0, course_session=i + 1)
        store.save(rec)
        print(rec.uid, flush=True)
    store.close()


if __name__ == "__main__":
    main()
