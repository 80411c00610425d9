"""`humpback train` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/train.py."""
import sys

from humpback.stages.train import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
