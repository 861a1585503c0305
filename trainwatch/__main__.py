"""``python -m trainwatch`` runs the console script."""

from trainwatch.cli import main

raise SystemExit(main())
