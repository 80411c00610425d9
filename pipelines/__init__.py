"""One Spark job per stage; each module's `main(argv)` is what spark-submit and `humpback <stage>` run."""
