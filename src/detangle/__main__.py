from detangle.cli import main

raise SystemExit(main())
