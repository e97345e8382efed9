"""What minutely's tests and benchmarks share, shipped with the package (as bytewax ships its
``testing.py``) so that neither imports the other:

- ``access``: ``TESTSERVER``, the ``Access`` for apps under Starlette's ``TestClient``;
- ``clock``: ``FakeClock``, wall time that moves only when a test moves it;
- ``processes``: real ``minutely`` processes, and the start/wait/stop life of the other
  servers tests run;
- ``natsserver``: a real ``nats-server`` with JetStream on a free port;
- ``natscluster``: three (or N) clustered ``nats-server`` with JetStream on loopback, each
  of which can be killed and started again;
- ``clickhouse_http``: the chDB-backed stand-in for a ClickHouse server's HTTP interface, the
  one double the tests allow (``python -m minutely.testing.clickhouse_http``).
"""
