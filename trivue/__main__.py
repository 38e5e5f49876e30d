"""``python -m trivue`` is the ``trivue`` command."""

from trivue.cli import main

raise SystemExit(main())
