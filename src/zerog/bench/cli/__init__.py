"""`zerog bench ...`: the benchmark commands, registered here, apart from the engine's
command line, which only mounts :func:`zerog.bench.cli.app.group` as `bench`."""
