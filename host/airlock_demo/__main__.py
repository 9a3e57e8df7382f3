"""``python -m airlock_demo`` (``make run``)."""

from .demo import main

main()
