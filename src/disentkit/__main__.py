from disentkit.cli import main

raise SystemExit(main())
