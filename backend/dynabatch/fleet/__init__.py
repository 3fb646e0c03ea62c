"""A simulated fleet: N dynabatch replicas behind a router, on one virtual clock.

Each replica is the serving core the Triton model builds (ServingCore + controller +
SimulatedExecutor); the router sees what a gateway would (see routers.py).
"""
