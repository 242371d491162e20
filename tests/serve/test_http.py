"""Real HTTP requests against the Ray Serve application, started once on loopback for the module.

Two applications share one local Ray: "one" (one replica, a batch of 4 and 2 waiting, so
a few requests fill it) and "two" (two replicas behind Serve's router). Every answer is
compared with ``generate()`` on the prompt alone. Every request has a bounded size and
a timeout, and the module shuts Ray down when it ends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")

from mamba_export.runtime.model import ORTMambaForCausalLM  # noqa: E402
from mamba_export.serve.app import build_application  # noqa: E402
from mamba_export.serve.completion import REPLICA_HEADER  # noqa: E402
from mamba_export.serve.options import ServeOptions  # noqa: E402

TIMEOUT = 60.0
ONE = ServeOptions(max_batch=4, max_waiting=2, max_prompt_tokens=64, max_tokens=1_000_000)
# A generation that does not end while a test runs (minutes of decoding on the tiny model): the
# tests that hold rows end them by disconnecting. With 20,000 tokens (seconds of decoding: 16 s at
# batch 4 through generate() on a 2-core machine) the flood's last requests on a loaded machine
# arrived after the first rows had finished and were let in.
ENDLESS = ONE.max_tokens
TWO = ServeOptions(max_batch=8, max_waiting=64)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(export_tiny, ops_library):
    """(base URL, solo(prompt, n) -> generate()'s new tokens up to the first EOS)."""
    folder = export_tiny("untied_head")
    port = free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_application(folder, ONE, replicas=1), name="one", route_prefix="/one")
        serve.run(build_application(folder, TWO, replicas=2), name="two", route_prefix="/two")
        model = ORTMambaForCausalLM.from_pretrained(folder)
        eos = model.folder.special_token("eos_token_id")

        def solo(prompt, n):
            out = model.generate(np.asarray([prompt]), max_new_tokens=n)[0, len(prompt):].tolist()
            return out[:out.index(eos) + 1] if eos in out else out

        yield f"http://127.0.0.1:{port}", solo
    finally:
        serve.shutdown()
        ray.shutdown()


def post(url, body, timeout=TIMEOUT):
    return httpx.post(url, content=json.dumps(body), timeout=timeout)


def prompts(count, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 61, int(rng.integers(1, 30))).tolist() for _ in range(count)]


def metrics(base, app="one"):
    return httpx.get(f"{base}/{app}/metrics", timeout=TIMEOUT).json()


def wait_idle(base, app="one"):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        current = metrics(base, app)
        if current["running"] == 0 and current["waiting"] == 0:
            return current
        time.sleep(0.2)
    raise AssertionError(f"the server is still busy: {current}")


def sse_events(lines):
    events = []
    for line in lines:
        if line.startswith("data: "):
            events.append(line[len("data: "):])
    return events


def test_plain_completion_equals_solo_generate(server):
    base, solo = server
    prompt = [7, 3, 19, 44]
    response = post(f"{base}/one/v1/completions", {"prompt": prompt, "max_tokens": 12, "temperature": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    choice = body["choices"][0]
    assert choice["token_ids"] == solo(prompt, 12)
    assert choice["finish_reason"] == ("length" if len(choice["token_ids"]) == 12 else "stop")
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": len(choice["token_ids"]),
                             "total_tokens": 4 + len(choice["token_ids"])}
    assert body["object"] == "text_completion" and response.headers[REPLICA_HEADER]


def test_streaming_sends_each_token_then_done(server):
    base, solo = server
    prompt = [11, 12, 13]
    body = {"prompt": prompt, "max_tokens": 9, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{base}/one/v1/completions", content=json.dumps(body), timeout=TIMEOUT) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e)["choices"][0] for e in events[:-1]]
    tokens = [t for c in chunks for t in c["token_ids"]]
    assert tokens == solo(prompt, 9) and len(chunks) == len(tokens) + 1  # one event per token, then the end
    assert chunks[-1]["finish_reason"] in ("length", "stop") and all(c["finish_reason"] is None for c in chunks[:-1])


def test_concurrent_greedy_requests_are_not_crossed(server):
    base, solo = server
    cases = [(p, 5 + 3 * i) for i, p in enumerate(prompts(6, seed=1))]  # the whole capacity of "one"

    def ask(case):
        return post(f"{base}/one/v1/completions", {"prompt": case[0], "max_tokens": case[1], "temperature": 0})

    with ThreadPoolExecutor(len(cases)) as pool:
        responses = list(pool.map(ask, cases))
    for (prompt, n), response in zip(cases, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["token_ids"] == solo(prompt, n), prompt


def test_seeded_sampling_repeats(server):
    base, _ = server
    body = {"prompt": [5, 6, 7], "max_tokens": 15, "temperature": 0.9, "top_p": 0.95, "seed": 3}
    first, second = (post(f"{base}/one/v1/completions", body).json() for _ in range(2))
    other = post(f"{base}/one/v1/completions", {**body, "seed": 4}).json()
    assert first["choices"][0]["token_ids"] == second["choices"][0]["token_ids"]
    assert first["choices"][0]["token_ids"] != other["choices"][0]["token_ids"]


def test_a_client_that_disconnects_cancels_its_request(server):
    base, _ = server
    before = wait_idle(base)["cancelled_total"]
    body = {"prompt": [1, 2, 3], "max_tokens": ENDLESS, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{base}/one/v1/completions", content=json.dumps(body), timeout=TIMEOUT) as response:
        lines = response.iter_lines()
        assert sum(1 for _, line in zip(range(6), lines, strict=False) if line.startswith("data: ")) >= 2
    after = wait_idle(base)  # running drops to 0 long before ENDLESS tokens
    assert after["cancelled_total"] == before + 1


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", None),
    ({"max_tokens": 4}, "prompt"),
    ({"prompt": [1, 2], "max_tokens": -3}, "max_tokens"),
    ({"prompt": [1, 2], "max_tokens": "many"}, "max_tokens"),
    ({"prompt": 12}, "prompt"),
    ({"prompt": list(range(1, 61)) + [1, 2, 3, 4, 5]}, "prompt"),  # 65 tokens, the limit is 64
    ({"prompt": [1], "temperature": [1]}, "temperature"),
])
def test_bad_requests_get_400_and_the_server_keeps_serving(server, body, field):
    base, solo = server
    content = body if isinstance(body, bytes) else json.dumps(body)
    response = httpx.post(f"{base}/one/v1/completions", content=content, timeout=TIMEOUT)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == field and error["message"]
    if field:
        assert f"'{field}'" in error["message"]
    good = post(f"{base}/one/v1/completions", {"prompt": [9, 8], "max_tokens": 3, "temperature": 0})
    assert good.status_code == 200 and good.json()["choices"][0]["token_ids"] == solo([9, 8], 3)


def test_a_full_queue_answers_503_and_recovers(server):
    base, solo = server
    wait_idle(base)
    body = json.dumps({"prompt": [4, 5, 6], "max_tokens": ENDLESS, "temperature": 0, "stream": True})
    total = ONE.max_batch + ONE.max_waiting + 2

    async def flood():
        answered, everyone_answered = [], asyncio.Event()
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            async def one():
                async with client.stream("POST", f"{base}/one/v1/completions", content=body) as response:
                    answered.append(response.status_code)
                    if len(answered) == total:
                        everyone_answered.set()
                    if response.status_code != 200:
                        return response.status_code, (await response.aread()).decode()
                    # Hold the row until every request has its answer (however slowly they arrive), then
                    # disconnect: a row freed earlier would let a later request in and hide the limit.
                    await asyncio.wait_for(everyone_answered.wait(), TIMEOUT)
                    return 200, ""
            return await asyncio.gather(*(one() for _ in range(total)))

    results = asyncio.run(flood())
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == ONE.max_batch + ONE.max_waiting and statuses.count(503) == 2, statuses
    assert all("server busy" in json.loads(text)["error"]["message"] for status, text in results if status == 503)
    assert wait_idle(base)["rejected_total"] >= 2
    good = post(f"{base}/one/v1/completions", {"prompt": [9, 8], "max_tokens": 3, "temperature": 0})
    assert good.status_code == 200 and good.json()["choices"][0]["token_ids"] == solo([9, 8], 3)


def test_health_and_metrics(server):
    base, _ = server
    health = httpx.get(f"{base}/one/health", timeout=TIMEOUT).json()
    assert health["status"] == "ok" and health["provider"] == "cpu"
    current = metrics(base)
    assert {"running", "waiting", "tokens_per_s", "batch_occupancy", "tokens_total"} <= set(current)
    assert current["tokens_total"] > 0 and current["max_batch"] == ONE.max_batch


def test_two_replicas_behind_the_router(server):
    base, solo = server
    cases = [(p, 30) for p in prompts(16, seed=2)]
    seen = set()

    def ask(case):
        return post(f"{base}/two/v1/completions", {"prompt": case[0], "max_tokens": case[1], "temperature": 0})

    for _ in range(3):  # the router picks replicas at random: three rounds make missing one unlikely
        with ThreadPoolExecutor(len(cases)) as pool:
            responses = list(pool.map(ask, cases))
        for (prompt, n), response in zip(cases, responses, strict=True):
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["token_ids"] == solo(prompt, n)
            seen.add(response.headers[REPLICA_HEADER])
        if len(seen) == 2:
            break
    assert len(seen) == 2, seen
