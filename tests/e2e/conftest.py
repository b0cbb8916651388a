from tests.lifecycle.conftest import docker_client  # noqa: F401 (fixture)
