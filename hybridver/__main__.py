"""``python -m hybridver ...``: the same command line as the ``hybridver`` script."""

from hybridver.cli import main

raise SystemExit(main())
