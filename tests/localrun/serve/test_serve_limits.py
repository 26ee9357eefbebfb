"""serve and the node limits: a node killed by one says which in /api/status and serve.log,
and is restarted as after any crash."""

from __future__ import annotations

from tests.localrun.helpers import make_project
from tests.localrun.serve.test_serve_e2e import Serve, _status
from tests.support.polling import until

APP = """
import os
import panoramasdk

STARTS = "/opt/aws/panorama/storage/starts.txt"
starts = int(open(STARTS).read()) + 1 if os.path.exists(STARTS) else 1
with open(STARTS, "w") as f:
    f.write(str(starts))
node = panoramasdk.node()
if starts == 1:  # the first start goes past its memory limit
    hog = [bytearray(32 << 20) for _ in range(64)]
while True:
    node.outputs.video_out.put(node.inputs.video_in.get())
"""


def test_a_node_killed_by_its_memory_limit_shows_it_and_is_restarted(tmp_path):
    root = make_project(tmp_path, APP, params={})
    state = tmp_path / "state"
    serve = Serve(root, state, "--node-memory", "256M", "--node-pids", "64")
    try:
        serve.wait_ready()

        def restarted():
            node = _status(serve)["nodes"]["code_node"]
            return node if node["restarts"] >= 1 and node["state"] == "running" else None

        node = until(restarted, 60, "the node to be restarted")
        assert node["last_exit"] == "memory limit 256 MiB", node
        assert (state / "storage" / "code_node" / "starts.txt").read_text() == "2"
    finally:
        code = serve.stop()
    assert code == 0, serve.output()
    log = (state / "logs" / "serve.log").read_text()
    assert "node code_node stopped: memory limit 256 MiB" in log, log[-3000:]
    assert "node code_node exited (memory limit 256 MiB); restarting in" in log, log[-3000:]
