from sokoul_appliance.cli import main

raise SystemExit(main())
