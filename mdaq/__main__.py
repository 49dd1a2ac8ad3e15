from mdaq.cli import main

raise SystemExit(main())
