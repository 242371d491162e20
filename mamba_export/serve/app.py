"""The Ray Serve application: one deployment whose replicas each run a CompletionServer.

Ray Serve owns the HTTP proxy, the routing between replicas and their placement over a
cluster; this module only declares the routes and how many replicas of what size to
start. Each replica runs its own scheduler (continuous batching happens inside a
replica; the router spreads requests across replicas). Importing it imports Ray, so the
CLI imports it only when serving.
"""

# No `from __future__ import annotations`: FastAPI reads the route parameters' annotations as classes.

import time
from pathlib import Path

from fastapi import FastAPI, Request
from ray import serve

from mamba_export.serve.options import ServeOptions

APP_NAME = "mamba-export"
http_api = FastAPI(title="mamba-export completions")


@serve.deployment
@serve.ingress(http_api)
class CompletionDeployment:
    """One replica: the model, loaded where Ray places the replica."""

    def __init__(self, folder: str, options: ServeOptions):
        from mamba_export.serve.completion import CompletionServer

        self.server = CompletionServer(folder, options)

    @http_api.post("/v1/completions")
    async def completions(self, request: Request):
        return await self.server.completions(await request.body())

    @http_api.get("/health")
    def health(self):
        return self.server.health()

    @http_api.get("/metrics")
    def metrics(self):
        return self.server.metrics()

    def __del__(self):
        server = getattr(self, "server", None)
        if server is not None:
            server.close()


def build_application(folder, options: ServeOptions, replicas: int = 1):
    """The bound application: ``replicas`` copies of the deployment, each taking one CPU (one GPU with
    provider "cuda"), and admitting one request more than its scheduler holds, so that request
    gets the scheduler's 503 instead of waiting in Serve's queue."""
    resources = {"num_cpus": 1, "num_gpus": 1 if options.provider == "cuda" else 0}
    deployment = CompletionDeployment.options(
        num_replicas=replicas, ray_actor_options=resources,
        max_ongoing_requests=options.max_batch + options.max_waiting + 1)
    return deployment.bind(str(Path(folder).resolve()), options)


def start(folder, options: ServeOptions, replicas: int = 1, host: str = "127.0.0.1", port: int = 8000,
          address=None, num_cpus=None):
    """Start (or join, with ``address``) a Ray cluster and run the application; returns once it is ready."""
    import ray

    if not ray.is_initialized():
        # A cluster joined keeps its own settings; a local one starts without the dashboard.
        # "local" starts a new instance even when another is running or was left behind.
        local = {} if address else {"include_dashboard": False, "num_cpus": num_cpus}
        ray.init(address=address or "local", log_to_driver=False, **local)
    serve.start(http_options={"host": host, "port": port})
    return serve.run(build_application(folder, options, replicas), name=APP_NAME, route_prefix="/")


def serve_forever(folder, options: ServeOptions, replicas: int, host: str, port: int, address) -> None:
    """:func:`start`, then wait until interrupted; shuts the application down on the way out."""
    start(folder, options, replicas, host, port, address)
    print(f"serving {folder} on http://{host}:{port}/v1/completions with {replicas} replica(s); Ctrl-C stops",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        serve.delete(APP_NAME)
        serve.shutdown()
