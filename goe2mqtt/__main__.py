from goe2mqtt.cli import main

raise SystemExit(main())
