import sys

from verl_fair.cli import main

sys.exit(main())
