from musicbench.cli import main

raise SystemExit(main())
