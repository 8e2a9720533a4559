import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while still importing: nothing is running yet
    sys.exit(0)

sys.exit(main())
