"""`zerog serve`: an HTTP API and a live web dashboard over the engine and the run store.

Needs the ``serve`` extra (FastAPI, uvicorn). Each run executes in its own ``zerog``
worker process (:mod:`zerog.serve.job`), started by a bounded pool (:mod:`zerog.serve.jobs`)
and writing to the same SQLite store the API reads; see docs/serve.md.
"""
