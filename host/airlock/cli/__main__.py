"""``python -m airlock.cli`` runs the ``airlock`` command."""

from . import main

main()
