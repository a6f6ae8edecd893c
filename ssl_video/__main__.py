from ssl_video.cli import main

raise SystemExit(main())
