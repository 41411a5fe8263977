from nixmod.cli import main

raise SystemExit(main())
