"""`humpback iterate` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/iterate.py."""
import sys

from humpback.stages.iterate import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
