"""Enqueue N add(a, b) jobs for a peer (run with .venv-bench): python -m bench.peers.enqueue dramatiq|celery N"""

import sys

name, n = sys.argv[1], int(sys.argv[2])
if name == "dramatiq":
    from bench.peers.dramatiq_tasks import add

    for i in range(n):
        add.send(i, 1)
else:
    from bench.peers.celery_tasks import add

    for i in range(n):
        add.apply_async((i, 1))
