import sys

from benchmarks.efficacy.run import main

sys.exit(main())
