"""`humpback scorer-check` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/scorer_check.py."""
import sys

from humpback.stages.scorer_check import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
