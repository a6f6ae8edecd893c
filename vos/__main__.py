from vos.cli import main

raise SystemExit(main())
