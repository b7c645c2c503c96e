import sys

from verl_fair.demo.advantage import main

sys.exit(main())
