"""Scale-out chaos tests (issue 12): real `podium worker` processes on Postgres, SIGKILLed,
frozen and thawed, and the server itself restarted (a private cluster). They run in `make test`:
together some two minutes on two cores."""
