"""`humpback trainset` as a job for spark-submit; the stage is declared, with its logic, in humpback/stages/trainset.py."""
import sys

from humpback.stages.trainset import STAGE

main = STAGE.main

if __name__ == "__main__":
    sys.exit(main())
