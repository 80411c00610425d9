"""`humpback evaluate` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/evaluate.py."""
import sys

from humpback.stages.evaluate import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
