"""``python -m pdbridge`` is the ``pdbridge`` command."""
from .cli import main

raise SystemExit(main())
