import sys

from verl_fair.demo.run import main

sys.exit(main())
