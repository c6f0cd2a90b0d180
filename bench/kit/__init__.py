"""The benchmark's kit: what every driver (the benchmark in bench/run.py, the profiles in
bench/profiles/) shares, each concern in one module.

- ``stacks``: the systems under test started and stopped (the project's stack, the seed,
  Centrifugo, the stream service alone), the descriptor limit;
- ``ports``: free loopback ports, and the wait until one listens;
- ``loadgen``: the load generator (bench/loadgen-go): readers, paced steps, closed-loop posters;
- ``fanout``: what the load generator needs to publish into Redis as the bridge does;
- ``cpu``: CPU time and memory of process trees, read once or sampled (``Monitor``);
- ``stats``: quantiles, nearest-rank percentiles, least-squares lines;
- ``hops``: the services' own latency histograms, before and after a step;
- ``systems``: the systems a run may hold, in the report's order;
- ``tools``: the compiled programs, built once into the per-user cache.
"""
