import sys

from monobench.cli import main

sys.exit(main())
