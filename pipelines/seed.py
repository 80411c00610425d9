"""`humpback seed` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/seed.py."""
import sys

from humpback.stages.seed import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
