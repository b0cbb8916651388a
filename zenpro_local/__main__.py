import sys

from zenpro_local.cli import main

sys.exit(main())
