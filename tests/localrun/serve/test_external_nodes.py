"""serve --external-nodes: a node the engine starts reads as running from its hello to the
close of its connection, with the pid it gave, and as exited (1) after."""

from __future__ import annotations

from panorama_cli.localrun.serve.external import ExternalNode, NodeLinks


def test_a_lifetime_runs_from_hello_to_bye_with_its_pid() -> None:
    links = NodeLinks()
    node = ExternalNode("code_node", links)
    node.start()
    assert node.poll() is None and node.pid is None and not node.is_connected
    links.hello("code_node", 7)
    assert node.is_connected and node.pid == 7 and node.poll() is None
    links.bye("code_node")
    assert node.poll() == 1 and node.pid is None


def test_the_next_lifetime_waits_for_a_new_hello() -> None:
    links = NodeLinks()
    links.hello("code_node", 7)
    links.bye("code_node")
    node = ExternalNode("code_node", links)
    node.start()
    assert node.poll() is None, "an old connection does not end a new lifetime"
    links.hello("code_node", 9)
    assert node.pid == 9
    links.bye("code_node")
    assert node.stop() == 1


def test_a_lifetime_takes_the_connection_already_open() -> None:
    links = NodeLinks()
    links.hello("code_node", 3)
    node = ExternalNode("code_node", links)
    node.start()
    assert node.is_connected and node.poll() is None
    links.bye("code_node")
    assert node.wait(0) == 1


def test_nodes_are_counted_apart() -> None:
    links = NodeLinks()
    links.hello("a", 1)
    links.hello("b", 2)
    links.bye("a")
    assert not links.is_open("a") and links.is_open("b") and links.pid("b") == 2
    assert links.hellos("a") == 1
